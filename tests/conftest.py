"""Shared test helpers. Real components only: a missing tool skips on a laptop, fails in CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import CollectorHarness

pytest_plugins = ["tests.leaks"]


def require_tool(name: str) -> str:
    """Path of a tool the test needs. Skips when absent, but fails when CI=true."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (scripts/test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def require(condition: bool, message: str) -> None:
    """Like require_tool, for what is not a tool on the PATH: skip here, fail when CI=true."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorHarness]:
    """A real collector (TLS gRPC on 127.0.0.1, DuckDB under tmp_path), started."""
    harness = CollectorHarness(tmp_path / "collector")
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()

