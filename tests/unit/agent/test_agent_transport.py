"""The agent's gRPC wait slice: an idle agent's shipper-reader must not wake ten times a second."""

from __future__ import annotations

import importlib

import pytest

import agent.transport as transport

pytestmark = pytest.mark.unit


def test_grpc_blocking_waits_use_the_agents_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    common = importlib.import_module("grpc._common")
    monkeypatch.setattr(common, "MAXIMUM_WAIT_TIMEOUT", 0.1)  # gRPC's own, restored after
    transport.quieter_grpc_waits()
    assert common.MAXIMUM_WAIT_TIMEOUT == transport.GRPC_WAIT_S > 1.0


def test_a_grpc_without_the_constant_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    common = importlib.import_module("grpc._common")
    monkeypatch.delattr(common, "MAXIMUM_WAIT_TIMEOUT")
    transport.quieter_grpc_waits()  # no error, nothing invented
    assert not hasattr(common, "MAXIMUM_WAIT_TIMEOUT")
