"""A damaged outbox -wal: SQLite drops every commit after a bad frame without a word; the
outbox finds them, puts the events back and says what happened (issue 15, finding 4)."""

from __future__ import annotations

import shutil
import sqlite3
import struct
from pathlib import Path

import pytest

from agent.outbox import Outbox
from agent.outbox_file import CorruptOutbox
from protos import envelope, events_pb2

pytestmark = pytest.mark.unit

AGENT = "ag-test0000000000000001"
FRAME_HEADER, WAL_HEADER = 24, 32


def snapshot_with_wal(tmp_path: Path, n: int = 150) -> tuple[Path, list[str]]:
    """An outbox whose recent commits are all still in its -wal (as after a kill -9):
    n events put (ids in order), the first 100 chained, the first 50 acknowledged."""
    live = tmp_path / "live"
    live.mkdir()
    box = Outbox.open(live / "outbox.sqlite", AGENT)
    ids = [box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert(note=str(i))))
           for i in range(n)]  # fmt: skip
    box.resume(0, b"")
    box.chain_pending(100)
    box.ack(50)
    copy = tmp_path / "copy"
    copy.mkdir()
    for part in live.iterdir():  # the files as a killed agent leaves them
        shutil.copy2(part, copy / part.name)
    box.close()
    assert (copy / "outbox.sqlite-wal").stat().st_size > 100_000
    return copy / "outbox.sqlite", ids


def frames(wal: Path) -> list[tuple[int, int]]:
    """(offset, page number) of each frame of the current log."""
    data = wal.read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    out = []
    for offset in range(WAL_HEADER, len(data) - FRAME_HEADER - page_size + 1,
                        FRAME_HEADER + page_size):  # fmt: skip
        if data[offset + 8 : offset + 16] != salts:
            break
        out.append((offset, struct.unpack(">I", data[offset : offset + 4])[0]))
    return out


def damage(wal: Path, offset: int, length: int = 64) -> None:
    data = bytearray(wal.read_bytes())
    for i in range(offset, offset + length):
        data[i] ^= 0xFF
    wal.write_bytes(bytes(data))


def ids_in(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {i for (i,) in conn.execute("SELECT event_id FROM queued UNION "
                                           "SELECT event_id FROM chained")}  # fmt: skip
    finally:
        conn.close()


def plain_sqlite_keeps(path: Path, tmp: Path) -> set[str]:
    """What SQLite alone makes of the files (on a copy): the loss this module prevents."""
    tmp.mkdir()
    for part in path.parent.glob(path.name + "*"):
        shutil.copy2(part, tmp / part.name)
    try:
        return ids_in(tmp / path.name)
    except sqlite3.OperationalError:  # not even the tables: they were made in the log
        return set()


def recovered_events(box: Outbox) -> list[events_pb2.AgentStatus]:
    rows = box._conn.execute("SELECT body FROM queued").fetchall()
    events = [events_pb2.Event.FromString(b) for (b,) in rows]
    return [e.status for e in events
            if e.status.kind == events_pb2.AgentStatus.OUTBOX_RECOVERED]  # fmt: skip


def test_a_damaged_frame_mid_log_loses_nothing_and_is_reported(tmp_path: Path) -> None:
    path, order = snapshot_with_wal(tmp_path)
    ids = set(order)
    wal = Path(f"{path}-wal")
    log = frames(wal)
    later = {page for _, page in log[len(log) // 2 + 1 :]}
    offset = next(o for o, page in log[len(log) // 2 :] if page in later)  # a page written again
    damage(wal, offset + FRAME_HEADER + 1000)
    lost_to_sqlite = ids - plain_sqlite_keeps(path, tmp_path / "plain")
    assert len(lost_to_sqlite) > 10  # the finding: these went without a word

    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    with pytest.raises(CorruptOutbox, match="-wal was damaged at frame"):
        Outbox.peek(path)  # status says so, and changes nothing
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before

    box = Outbox.open(path, AGENT)
    try:
        # The collector's Welcome: it holds the 50 the PC saw acknowledged (the base may have
        # gone with the damaged frames: then the outbox adopts the collector's head).
        box.resume(*(box.counts().base or (50, b"\x07" * 32)))
        collector_has = set(order[:50])
        assert ids - collector_has <= ids_in(path)
        assert not collector_has & ids_in(path)  # nothing stored twice
        [status] = recovered_events(box)
        assert "committed transaction(s) after it were not replayed" in status.detail
        assert status.count >= len(lost_to_sqlite)
        rows = box._conn.execute("SELECT seq, raw, hash FROM chained ORDER BY seq").fetchall()
        assert envelope.verify_stored_chain(AGENT, rows) == len(rows)  # the chain is whole
    finally:
        box.close()
    [kept] = path.parent.glob("outbox.sqlite-wal.damaged-*")
    assert kept.read_bytes() == before["outbox.sqlite-wal"]


@pytest.mark.parametrize("collector_head", [50, 100])
def test_a_damaged_log_header_loses_nothing_and_doubles_nothing(
    tmp_path: Path, collector_head: int
) -> None:
    path, order = snapshot_with_wal(tmp_path)
    damage(Path(f"{path}-wal"), 16, 4)  # salt-1: SQLite then ignores the whole log
    assert plain_sqlite_keeps(path, tmp_path / "plain") == set()
    box = Outbox.open(path, AGENT)
    try:
        # The chain's base went with the log: the 50 acknowledged are skipped (the collector
        # has them); chained 51-100 may have been stored without the ack being recorded, so
        # they wait for the Welcome: what the collector lacks is queued again, the rest dropped.
        [status] = recovered_events(box)
        assert status.count == 100  # 50 held, 50 queued again
        box.resume(collector_head, b"\x07" * 32)
        held_back = set(order[collector_head:100])
        assert set(order[100:]) | held_back <= ids_in(path)
        assert not set(order[:collector_head]) & ids_in(path)  # nothing stored twice
    finally:
        box.close()


def test_a_torn_uncommitted_tail_is_not_damage(tmp_path: Path) -> None:
    path, _ = snapshot_with_wal(tmp_path)
    wal = Path(f"{path}-wal")
    offset, _ = frames(wal)[-1]
    data = wal.read_bytes()
    wal.write_bytes(data[: offset + FRAME_HEADER + 100])  # the last frame half written
    box = Outbox.open(path, AGENT)
    try:
        assert recovered_events(box) == []
    finally:
        box.close()


def test_a_healthy_log_is_left_alone(tmp_path: Path) -> None:
    path, order = snapshot_with_wal(tmp_path)
    box = Outbox.open(path, AGENT)
    try:
        assert recovered_events(box) == [] and set(order) <= ids_in(path)
        assert not list(path.parent.glob("*.damaged-*"))
    finally:
        box.close()


def test_a_recovered_log_is_not_read_as_damage_at_the_next_start(tmp_path: Path) -> None:
    """After a recovery SQLite writes on after the last good frame under the same salts; the
    damaged frame's successors left in the file once looked like fresh damage at the next
    start, and their stale rows were put back again (a double in the chaos run)."""
    path, _ = snapshot_with_wal(tmp_path)
    wal = Path(f"{path}-wal")
    log = frames(wal)
    damage(wal, log[len(log) // 2][0] + FRAME_HEADER + 1000)
    box = Outbox.open(path, AGENT)
    try:
        box.resume(*(box.counts().base or (50, b"\x07" * 32)))
        box.chain_pending(1000)
        head = box.counts().head
        assert head is not None
        box.ack(head[0])
        for i in range(3):
            box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert(note=f"n{i}")))
        killed = tmp_path / "killed"
        killed.mkdir()
        for part in path.parent.glob("outbox.sqlite*"):  # the files as a kill -9 leaves them
            shutil.copy2(part, killed / part.name)
    finally:
        box.close()
    again = Outbox.open(killed / path.name, AGENT)
    try:
        assert recovered_events(again) == []  # no damage reported, nothing put back
        assert again.counts().pending == 3
    finally:
        again.close()


def test_an_event_held_from_an_earlier_recovery_is_not_queued_again(tmp_path: Path) -> None:
    """Held events wait for the collector's Welcome to say whether it has them; a stale queued
    copy read from a damaged log must not queue them a second time."""
    from agent.outbox_wal import LostRow, WalDamage, put_back

    box = Outbox.open(tmp_path / "outbox.sqlite", AGENT)
    try:
        conn = box._conn
        event_id = "ab" * 16
        conn.execute("INSERT INTO held(seq, event_id, raw) VALUES (7, ?, x'00')", (event_id,))
        lost = WalDamage(0, 3, 1)
        lost.rows[("queued", event_id)] = LostRow("queued", 3, event_id, (2, b"body", 0))
        assert put_back(conn, lost, AGENT).requeued == 0
        assert ids_in(tmp_path / "outbox.sqlite") == set()
    finally:
        box.close()


def test_rows_are_not_read_from_a_damaged_frame_past_the_first(tmp_path: Path) -> None:
    """A byte flipped in an event_id in a later frame (a second bad block) once gave the row
    an id nobody put, so the event was queued again beside its own copy: stored twice."""
    path, order = snapshot_with_wal(tmp_path)
    wal = Path(f"{path}-wal")
    log = frames(wal)
    damage(wal, log[len(log) // 2][0] + FRAME_HEADER + 1000)  # the first bad frame
    data = bytearray(wal.read_bytes())
    size = log[1][0] - log[0][0]
    # Table leaf pages past the first damage, oldest first: queued rows' images (the events
    # were put before they were chained).
    leaves = [o + FRAME_HEADER for o, _ in log[len(log) // 2 + 1 :]
              if data[o + FRAME_HEADER] == 0x0D]  # fmt: skip
    at, event_id = next((found, i) for start in leaves for i in order
                        if (found := data.find(i.encode(), start, start + size)) > 0)  # fmt: skip
    data[at] = ord("0" if event_id[0] != "0" else "1")  # another id, still hex
    forged = chr(data[at]) + event_id[1:]
    wal.write_bytes(bytes(data))
    box = Outbox.open(path, AGENT)
    try:
        box.resume(*(box.counts().base or (50, b"\x07" * 32)))
        assert forged not in ids_in(path)
    finally:
        box.close()


def test_a_reader_delays_emptying_the_log_until_a_later_put(tmp_path: Path) -> None:
    """Emptying a recovered -wal waits for readers; with one reading it is tried again at the
    next put, and the stale frames are gone once it succeeds."""
    path, _ = snapshot_with_wal(tmp_path)
    wal = Path(f"{path}-wal")
    log = frames(wal)
    damage(wal, log[len(log) // 2][0] + FRAME_HEADER + 1000)
    reader = sqlite3.connect(path)  # after the damage was read: SQLite replays it on open
    box = None
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM queued").fetchone()  # holds a read snapshot
        box = Outbox.open(path, AGENT)
        assert box._log_to_restart  # the reader stopped the checkpoint
        reader.rollback()
        box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert(note="next")))
        assert not box._log_to_restart
        assert wal.stat().st_size < 100_000  # emptied, then one put's frames
    finally:
        if box is not None:
            box.close()
        reader.close()
