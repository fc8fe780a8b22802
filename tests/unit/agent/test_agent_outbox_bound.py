"""The bounded outbox: oldest lowest-severity first, and one counted DROPPED event."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.outbox import Outbox
from protos import events_pb2

pytestmark = pytest.mark.unit

AGENT = "ag-test0000000000000002"


def queued(box: Outbox) -> list[events_pb2.Event]:
    box.resume(0, b"")
    box.chain_pending(1000)
    _, rows = box.chained_after(0, 1000, 1 << 30)
    return [events_pb2.Event.FromString(r.raw) for r in rows]


def put(box: Outbox, note: str, severity: int) -> str:
    return box.put(events_pb2.Event(severity=severity, test_alert=events_pb2.TestAlert(note=note)))


def test_past_the_bound_the_oldest_lowest_severity_events_go_first(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite", AGENT, max_pending=4)
    for note, severity in [("h1", 0), ("s5", 5), ("h2", 0), ("s3", 3), ("s1", 1), ("s4", 4)]:
        put(box, note, severity)
    events = queued(box)
    kept = [e.test_alert.note for e in events if e.WhichOneof("payload") == "test_alert"]
    assert kept == ["s5", "s3", "s1", "s4"]  # both severity-0 events went, oldest first
    counters = [e for e in events if e.WhichOneof("payload") == "status"]
    assert len(counters) == 1
    status = counters[0].status
    assert status.kind == events_pb2.AgentStatus.DROPPED
    assert status.count == 2 and dict(status.dropped_by_severity) == {0: 2}
    box.close()


def test_drops_coalesce_into_one_counter_that_is_never_dropped(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite", AGENT, max_pending=3)
    for i in range(20):
        put(box, f"e{i}", severity=1 + i % 2)
    assert box.counts().pending == 3 + 1  # the bound plus the counter
    events = queued(box)
    counters = [e.status for e in events if e.WhichOneof("payload") == "status"]
    assert len(counters) == 1
    assert counters[0].count == 17
    assert dict(counters[0].dropped_by_severity) == {1: 10, 2: 7}
    notes = [e.test_alert.note for e in events if e.WhichOneof("payload") == "test_alert"]
    assert notes == ["e15", "e17", "e19"]  # the severity-2 events that came last
    box.close()


def test_a_counter_once_chained_is_final_and_the_next_drop_starts_another(
    tmp_path: Path,
) -> None:
    box = Outbox.open(tmp_path / "o.sqlite", AGENT, max_pending=1)
    box.resume(0, b"")
    put(box, "a", 1)
    put(box, "b", 1)  # drops a
    box.chain_pending(10)
    put(box, "c", 1)
    put(box, "d", 1)  # drops c
    box.chain_pending(10)
    _, rows = box.chained_after(0, 10, 1 << 20)
    events = [events_pb2.Event.FromString(r.raw) for r in rows]
    counts = [e.status.count for e in events if e.WhichOneof("payload") == "status"]
    assert counts == [1, 1]
    assert [e.test_alert.note for e in events if e.HasField("test_alert")] == ["b", "d"]
    box.close()


def test_chained_events_are_never_dropped(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite", AGENT, max_pending=2)
    box.resume(0, b"")
    for i in range(2):
        put(box, f"sent{i}", 0)
    box.chain_pending(10)
    for i in range(5):
        put(box, f"new{i}", 5)
    counts = box.counts()
    assert counts.unacked == 2 and counts.pending == 3  # two new ones and the counter
    box.close()


def test_a_burst_of_drops_logs_a_line_a_minute_and_status_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agent import outbox_bound

    outbox_bound._unlogged.update(count=0, at=-outbox_bound.LOG_EVERY_S)
    box = Outbox.open(tmp_path / "o.sqlite", AGENT, max_pending=3)
    with caplog.at_level("WARNING", logger="agent.outbox_bound"):
        for i in range(500):
            put(box, f"e{i}", severity=1)
    lines = [r for r in caplog.records if r.getMessage().startswith("outbox.dropped")]
    assert len(lines) == 1  # not 497 (a real burst wrote 10,007 lines)
    assert box.counts().dropped == 497
    box.close()
    again = Outbox.open(tmp_path / "o.sqlite", AGENT, max_pending=3)
    assert again.counts().dropped == 497  # kept across restarts, for `status`
    again.close()


def test_a_full_disk_is_named_and_hides_no_error_and_writes_resume_when_space_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    from agent import outbox as outbox_module

    getattr(outbox_module, "_full_logged", [0.0])[0] = -60.0  # (a fresh minute for the log)
    box = Outbox.open(tmp_path / "o.sqlite", AGENT, max_pending=100_000)
    put(box, "before", 1)
    # SQLite's own limit on the file's pages: the same SQLITE_FULL a full disk gives.
    (pages,) = box._conn.execute("PRAGMA page_count").fetchone()
    box._conn.execute(f"PRAGMA max_page_count = {pages}")
    with (caplog.at_level("ERROR", logger="agent.outbox"),
          pytest.raises(sqlite3.OperationalError, match="full")):  # not "cannot rollback"
        for i in range(10_000):
            put(box, "x" * 2000 + str(i), 1)
    assert any(r.getMessage().startswith("outbox.disk_full") for r in caplog.records)
    assert not box._conn.in_transaction
    box._conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
    put(box, "after", 1)
    notes = [e.test_alert.note for e in queued(box) if e.WhichOneof("payload") == "test_alert"]
    assert notes[0] == "before" and notes[-1] == "after"
    box.close()
