"""Faults around the collector's commit, on a real collector (issue 15, findings 1 and 2).

A commit that fails (a full disk) must fail its stream and every batch behind it on that
stream, so nothing is acknowledged that did not commit and nothing looks like a gap; and a
refused batch is recorded against the agent whose key the stream proved, never against the
name the batch carries.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import duckdb
import grpc
import pytest

from protos import ingest_pb2_grpc
from tests import agentsim
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_a_failed_commit_fails_its_stream_and_every_batch_after_it_and_loses_nothing(
    collector: CollectorHarness,
) -> None:
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    agent = agentsim.SimAgent(*agentsim.enrol(stub, collector.new_token()))
    session = agentsim.Session(stub, agent)
    nonce = session.welcome.nonce
    first_args, second_args = agent.record(3)[:3], agent.record(3)[:3]

    ingestor = collector.running.ingestor
    store = ingestor.store
    real_append = store.append_events
    entered = threading.Event()
    failures: list[int] = []

    def disk_full_once(events: Any) -> None:
        if not failures:
            failures.append(1)
            entered.set()
            # Fail only once the second batch waits behind this commit, so it is placed on
            # its own, after the failure: where the old writer filed a gap and acked it.
            wait_until(lambda: ingestor._jobs.qsize() > 0, "the second batch queued")
            raise duckdb.IOException("IO Error: Could not write file: No space left on device")
        real_append(events)

    store.append_events = disk_full_once  # type: ignore[method-assign]
    try:
        session.post(agent.batch(nonce, *first_args))
        assert entered.wait(30), "the first batch never reached the commit"
        session.post(agent.batch(nonce, *second_args))
        with pytest.raises(grpc.RpcError) as failed:
            session.answer()
    finally:
        store.append_events = real_append  # type: ignore[method-assign]
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "disk is full" in (failed.value.details() or "")
    assert "send it again" in (failed.value.details() or "")
    # Neither batch is stored, none acknowledged, no gap recorded against the PC.
    assert collector.count(agent.agent_id) == 0
    assert collector.tampering() == []
    # Space is back: the agent reconnects, is told the head, and sends both again.
    assert agentsim.resend(stub, agent, first_args, second_args) == (0, [3, 6])
    assert [e["seq"] for e in collector.events(agent.agent_id)] == [1, 2, 3, 4, 5, 6]
    assert collector.tampering() == []


def test_a_batch_labelled_as_another_agent_is_recorded_against_the_one_that_sent_it(
    collector: CollectorHarness,
) -> None:
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    a = agentsim.SimAgent(*agentsim.enrol(stub, collector.new_token()))
    b = agentsim.SimAgent(*agentsim.enrol(stub, collector.new_token()))
    session = agentsim.Session(stub, b)  # B proves its own key ...
    forged = agentsim.SimAgent(a.agent_id, b.key)  # ... and sends a batch in A's name
    answer = session.send(forged.batch(session.welcome.nonce, *forged.record(2)[:3]))
    assert answer.WhichOneof("msg") == "reject"
    records = collector.tampering()
    assert [r["agent_id"] for r in records] == [b.agent_id]
    assert a.agent_id in records[0]["detail"]  # the name it carried is kept as evidence
    assert collector.tampering(a.agent_id) == []  # A's hourly share is untouched
