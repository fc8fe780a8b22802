"""The shipper against the real collector: every event arrives once, whatever happens between."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from agent.identity import StateDir, load_identity
from agent.outbox import MAX_EVENT_BYTES, Outbox
from agent.shipper import Shipper
from protos import events_pb2
from tests.harness import CollectorHarness

Ship = Callable[..., AbstractContextManager[tuple[Shipper, Outbox]]]
Wait = Callable[..., None]

pytestmark = pytest.mark.integration


def alert(note: str, size: int = 0) -> events_pb2.Event:
    return events_pb2.Event(severity=1, test_alert=events_pb2.TestAlert(note=note + "x" * size))


def stored_ids(collector: CollectorHarness, agent_id: str) -> Counter[str]:
    return Counter(e["event"]["event_id"] for e in collector.events(agent_id))


def open_box(state: StateDir) -> tuple[str, Outbox]:
    agent_id = load_identity(state).agent_id
    return agent_id, Outbox.open(state.outbox, agent_id)


def test_events_arrive_once_in_order_with_their_chain_verified(
    collector: CollectorHarness,
    state: StateDir,
    ship: Ship,
    wait: Wait,
) -> None:
    agent_id, box = open_box(state)
    ids = [box.put(alert(str(i))) for i in range(1200)]  # more than two batches of 500
    with ship(state, box) as (shipper, _):
        wait(lambda: box.counts().pending + box.counts().unacked == 0, what="all acked")
        assert shipper.acked_batches >= 3
    events = collector.events(agent_id)
    assert [e["event"]["event_id"] for e in events] == ids
    assert [e["seq"] for e in events] == list(range(1, 1201))
    assert {e["chain"] for e in events} == {"verified"}
    assert collector.tampering() == []


def test_an_event_put_while_idle_is_shipped_promptly(
    collector: CollectorHarness,
    state: StateDir,
    ship: Ship,
    wait: Wait,
) -> None:
    agent_id, box = open_box(state)
    with ship(state, box) as (shipper, _):
        wait(lambda: shipper.connected, what="connected")
        other = Outbox.open(state.outbox, agent_id)  # as `safeguard-agent test-alert` does
        event_id = other.put(alert("from another process"))
        other.close()
        wait(lambda: event_id in stored_ids(collector, agent_id), 10, "the test alert")


def test_big_events_are_split_into_batches_under_the_message_cap(
    collector: CollectorHarness,
    state: StateDir,
    ship: Ship,
    wait: Wait,
) -> None:
    agent_id, box = open_box(state)
    size = MAX_EVENT_BYTES - 1024
    ids = [box.put(alert(str(i), size)) for i in range(40)]  # ~10 MiB in all
    with ship(state, box) as (shipper, _):
        wait(lambda: box.counts().unacked + box.counts().pending == 0, 60, "all acked")
        assert shipper.acked_batches >= 3
    assert list(stored_ids(collector, agent_id)) == ids


def test_collector_down_then_back_every_event_arrives_once(
    collector: CollectorHarness,
    state: StateDir,
    ship: Ship,
    wait: Wait,
) -> None:
    agent_id, box = open_box(state)
    with ship(state, box) as (shipper, _):
        early = [box.put(alert(f"early{i}")) for i in range(10)]
        wait(lambda: len(stored_ids(collector, agent_id)) == 10, what="early events")
        collector.stop()
        wait(lambda: not shipper.connected, what="the shipper to notice")
        during = [box.put(alert(f"down{i}")) for i in range(300)]
        wait(lambda: shipper.backoff.failures >= 2, what="a few failed reconnects")
        collector.start()
        wait(lambda: box.counts().pending + box.counts().unacked == 0, 60, "catch-up")
    stored = stored_ids(collector, agent_id)
    assert list(stored) == early + during
    assert set(stored.values()) == {1}
    assert collector.tampering() == []


def test_resume_after_a_lost_ack_sends_no_second_copy(
    collector: CollectorHarness,
    state: StateDir,
    tmp_path: Path,
    ship: Ship,
    wait: Wait,
) -> None:
    """The collector commits, the ack never reaches the outbox (say a power cut just then)."""
    agent_id, box = open_box(state)
    ids = [box.put(alert(str(i))) for i in range(25)]
    box.resume(0, b"")  # what the first Welcome says to a fresh agent
    box.chain_pending(100)
    box.close()
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for part in state.root.glob("outbox.sqlite*"):
        shutil.copy2(part, snapshot / part.name)  # signed and sent, not yet acknowledged
    with ship(state) as (_, shipped):
        wait(lambda: shipped.counts().unacked == 0, what="acked")
    for part in state.root.glob("outbox.sqlite*"):
        part.unlink()
    for part in snapshot.iterdir():
        shutil.copy2(part, state.root / part.name)  # the ack is lost
    with ship(state) as (shipper, again):
        assert again.counts().unacked == 25
        wait(lambda: shipper.connected and again.counts().unacked == 0, what="resume")
        assert shipper.acked_batches == 0  # nothing needed sending
    stored = stored_ids(collector, agent_id)
    assert list(stored) == ids and set(stored.values()) == {1}
    assert collector.tampering() == []


def test_a_failure_between_commit_and_ack_is_resolved_by_the_welcome(
    collector: CollectorHarness,
    state: StateDir,
    ship: Ship,
    wait: Wait,
) -> None:
    agent_id, real = open_box(state)

    class AckFailsOnce(Outbox):
        failed = False

        def ack(self, last_seq: int) -> int:
            if not self.failed:
                self.failed = True
                raise sqlite3.OperationalError("disk I/O error (simulated)")
            return super().ack(last_seq)

    real.close()
    box = AckFailsOnce.open(state.outbox, agent_id)
    ids = [box.put(alert(str(i))) for i in range(30)]
    with ship(state, box):
        wait(lambda: box.failed and box.counts().unacked == 0, what="recovery")
        more = [box.put(alert(f"more{i}")) for i in range(5)]
        wait(lambda: box.counts().pending + box.counts().unacked == 0, what="more")
    stored = stored_ids(collector, agent_id)
    assert list(stored) == ids + more and set(stored.values()) == {1}
    assert collector.tampering() == []


def test_a_revoked_agent_keeps_its_events_and_says_why(
    collector: CollectorHarness,
    state: StateDir,
    caplog: pytest.LogCaptureFixture,
    ship: Ship,
    wait: Wait,
) -> None:
    agent_id, box = open_box(state)
    assert collector.op("revoke", agent_id=agent_id, reason="stolen laptop")["revoked"]
    ids = [box.put(alert(str(i))) for i in range(3)]
    with caplog.at_level(logging.ERROR, logger="agent.shipper"), ship(state, box):
        wait(lambda: "ship.revoked" in caplog.text, what="the revocation in the log")
    box = Outbox.open(state.outbox, agent_id)
    assert box.counts().pending == len(ids)
    box.close()
    assert collector.count(agent_id) == 0


def test_an_agent_the_collector_does_not_know_keeps_its_events(
    collector: CollectorHarness,
    state: StateDir,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    ship: Ship,
    wait: Wait,
) -> None:
    agent_id, box = open_box(state)
    box.put(alert("kept"))
    collector.stop()
    other = CollectorHarness(tmp_path / "another")  # same CA would be needed: swap the data
    shutil.rmtree(other.data_dir / "tls")
    shutil.copytree(collector.data_dir / "tls", other.data_dir / "tls")
    shutil.copy2(collector.data.server_key, other.data.server_key)
    other.port = collector.port
    other.start()
    try:
        with caplog.at_level(logging.ERROR, logger="agent.shipper"), ship(state, box):
            wait(lambda: "ship.unknown_agent" in caplog.text, what="unknown agent")
    finally:
        other.stop()
    box = Outbox.open(state.outbox, agent_id)
    assert box.counts().pending == 1
    box.close()


def test_a_rejected_batch_keeps_its_events_and_is_logged(
    collector: CollectorHarness,
    state: StateDir,
    caplog: pytest.LogCaptureFixture,
    ship: Ship,
    wait: Wait,
) -> None:
    agent_id, box = open_box(state)
    box.put(alert("first"))
    with ship(state, box) as (_, shipped):
        wait(lambda: shipped.counts().unacked + shipped.counts().pending == 0, what="acked")
    with sqlite3.connect(state.outbox) as conn:  # the PC's chain is tampered with
        conn.execute("UPDATE meta SET value = ? WHERE key = 'base_hash'", (b"\x66" * 32,))
    box = Outbox.open(state.outbox, agent_id)
    box.put(alert("after the fork"))
    with caplog.at_level(logging.ERROR, logger="agent"), ship(state, box):
        wait(lambda: "batch.rejected" in caplog.text, what="the reject")
        assert "chain.mismatch" in caplog.text and "reason=fork" in caplog.text
    box = Outbox.open(state.outbox, agent_id)
    assert box.counts().unacked == 1  # kept, to be looked at
    box.close()
    assert [t["kind"] for t in collector.tampering(agent_id)] == ["fork"]
    assert collector.count(agent_id) == 1
