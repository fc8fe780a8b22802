"""The service on a full disk: it starts when space returns, and events wait in memory, in order.
The full disk is SQLite's own page limit (PRAGMA max_page_count): the same SQLITE_FULL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from agent.full_disk import SpillingPut, is_disk_full, open_when_space
from agent.outbox import Outbox
from protos import events_pb2

pytestmark = pytest.mark.unit

AGENT = "ag-test0000000000000003"


def alert(note: str) -> events_pb2.Event:
    return events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert(note=note))


def fill(box: Outbox) -> None:
    (pages,) = box._conn.execute("PRAGMA page_count").fetchone()
    box._conn.execute(f"PRAGMA max_page_count = {pages}")


def free(box: Outbox) -> None:
    box._conn.execute("PRAGMA max_page_count = 1073741823")


def stored(box: Outbox) -> list[events_pb2.Event]:
    box.resume(0, b"")
    box.chain_pending(100_000)
    _, rows = box.chained_after(0, 100_000, 1 << 30)
    return [events_pb2.Event.FromString(r.raw) for r in rows]


def notes(box: Outbox) -> list[str]:
    return [e.test_alert.note for e in stored(box) if e.WhichOneof("payload") == "test_alert"]


def a_real_full_error(tmp_path: Path) -> sqlite3.OperationalError:
    box = Outbox.open(tmp_path / "full.sqlite", AGENT)
    fill(box)
    try:
        for i in range(10_000):
            box.put(alert("x" * 2000 + str(i)))
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        box.close()
    raise AssertionError("the page limit never filled the file")


def test_events_refused_by_a_full_disk_wait_in_memory_and_are_written_in_order(
    tmp_path: Path,
) -> None:
    box = Outbox.open(tmp_path / "o.sqlite", AGENT)
    put = SpillingPut(box.put)
    put(alert("before"))
    fill(box)
    ids = [put(alert("y" * 1500 + f"|{i}")) for i in range(40)]
    assert put.waiting > 0 and all(ids)  # each named, though not yet written
    assert put.drain() == put.waiting  # still full: nothing moves
    free(box)
    put(alert("after"))  # what waits goes first
    assert put.waiting == 0
    got = notes(box)
    assert got[0] == "before" and got[-1] == "after"
    assert [n.split("|")[1] for n in got[1:-1]] == [str(i) for i in range(40)]
    assert [e.event_id for e in stored(box)][1:41] == ids
    box.close()


def test_past_the_limit_the_oldest_go_and_are_counted_when_space_returns(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite", AGENT)
    put = SpillingPut(box.put, limit=5)
    fill(box)
    for i in range(12):
        put(alert("z" * 3000 + f"|{i}"))
    assert put.waiting == 5
    free(box)
    assert put.drain() == 0  # the heartbeat's try
    events = stored(box)
    kept = [e.test_alert.note.split("|")[1] for e in events if e.test_alert.note]
    dropped = [e.status for e in events if e.WhichOneof("payload") == "status"]
    assert kept[-5:] == ["7", "8", "9", "10", "11"]
    # (some may go straight in before the page limit bites; every other one is counted)
    assert dropped and dropped[0].kind == events_pb2.AgentStatus.DROPPED
    assert dropped[0].count == 12 - len(kept) > 0
    assert "disk full" in dropped[0].detail
    box.close()


def test_other_database_errors_are_not_swallowed() -> None:
    def broken(event: events_pb2.Event) -> str:
        raise sqlite3.OperationalError("no such table: queued")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        SpillingPut(broken)(alert("x"))


def test_a_pc_that_boots_with_a_full_disk_waits_for_space_and_then_opens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = a_real_full_error(tmp_path)
    assert is_disk_full(full)
    tries: list[int] = []

    def opener() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise full
        return "opened"

    with caplog.at_level("WARNING", logger="agent.full_disk"):
        assert open_when_space(opener, threading.Event(), retry_s=0.001) == "opened"
    assert len(tries) == 3
    lines = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("outbox.open_waiting") for m in lines) == 1  # once, not per try
    assert any(m.startswith("outbox.opened waited_s=") for m in lines)


def test_a_stop_while_waiting_for_space_ends_the_wait(tmp_path: Path) -> None:
    full = a_real_full_error(tmp_path)
    stop = threading.Event()
    stop.set()

    def opener() -> str:
        raise full

    assert open_when_space(opener, stop, retry_s=30) is None


def test_a_full_disk_when_creating_the_file_counts_as_full(tmp_path: Path) -> None:
    import errno

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))

    def opener() -> str:
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        open_when_space(opener, threading.Event(), retry_s=0.001)
