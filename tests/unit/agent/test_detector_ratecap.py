"""The per-agent rate cap: repeats coalesced, a token bucket, and a counted record."""

from __future__ import annotations

import pytest

from agent.ratecap import RateConfig, RateGate
from protos import events_pb2

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def detection(terms: list[str], severity: int = 2, account: str = "amy") -> events_pb2.Event:
    return events_pb2.Event(severity=severity, account=account, keyword=events_pb2.KeywordDetection(
        category="violence", terms=terms, context="secret words"))  # fmt: skip


def test_repeats_are_coalesced_then_allowed_again_after_the_window() -> None:
    sent: list[events_pb2.Event] = []
    clock = Clock()
    gate = RateGate(sent.append, RateConfig(coalesce_s=60), clock)
    for _ in range(5):
        gate(detection(["kill"]))
    gate(detection(["kill"], account="ben"))  # another pupil is another matter
    assert len(sent) == 2
    clock.now += 61
    gate(detection(["kill"]))
    assert len(sent) == 3
    record = gate.flush()
    assert record is not None and record.status.kind == events_pb2.AgentStatus.DROPPED
    assert record.status.count == 4 and "coalesced=4 dropped=0" in record.status.detail
    assert "secret" not in record.SerializeToString().decode("latin-1")
    assert gate.flush() is None  # counted once


def test_the_cap_drops_and_counts_but_never_the_most_severe() -> None:
    sent: list[events_pb2.Event] = []
    clock = Clock()
    gate = RateGate(sent.append, RateConfig(per_minute=6, burst=2, coalesce_s=0), clock)
    for i in range(5):
        gate(detection([f"t{i}"]))
    gate(detection(["grave"], severity=5))
    assert [e.keyword.terms[0] for e in sent] == ["t0", "t1", "grave"]
    clock.now += 10  # one token back (6 a minute)
    gate(detection(["later"]))
    assert sent[-1].keyword.terms == ["later"]
    record = gate.flush()
    assert record is not None and dict(record.status.dropped_by_severity) == {2: 3}


def test_non_detections_pass_untouched() -> None:
    sent: list[events_pb2.Event] = []
    gate = RateGate(sent.append, RateConfig(per_minute=0.001, burst=0))
    for _ in range(3):
        gate(events_pb2.Event(heartbeat=events_pb2.Heartbeat()))
    assert len(sent) == 3
