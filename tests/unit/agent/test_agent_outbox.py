"""The outbox on its own: chaining, acknowledgement, resuming from a Welcome, the bound."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.outbox import MAX_EVENT_BYTES, Outbox, OutboxError
from protos import envelope, events_pb2

pytestmark = pytest.mark.unit

AGENT = "ag-test0000000000000001"


def alert(note: str, severity: int = 1) -> events_pb2.Event:
    return events_pb2.Event(severity=severity, test_alert=events_pb2.TestAlert(note=note))


def parse(raw: bytes) -> events_pb2.Event:
    return events_pb2.Event.FromString(raw)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox.open(tmp_path / "outbox.sqlite", AGENT)
    yield outbox
    outbox.close()


def test_nothing_is_chained_before_the_collector_says_where_the_chain_is(box: Outbox) -> None:
    box.put(alert("a"))
    assert box.chain_pending(10) == 0
    assert box.counts().pending == 1 and box.counts().base is None


def test_chained_events_match_envelope_chain_from_genesis(box: Outbox) -> None:
    ids = [box.put(alert(str(i))) for i in range(7)]
    box.resume(0, b"")
    assert box.chain_pending(4) == 4  # two transactions: the chain must run on across them
    assert box.chain_pending(10) == 3
    prev, rows = box.chained_after(0, 100, 1 << 20)
    raws = [r.raw for r in rows]
    assert prev == envelope.genesis(AGENT)
    assert [r.hash for r in rows] == envelope.chain(prev, raws)
    assert [parse(r).seq for r in raws] == [r.seq for r in rows] == list(range(1, 8))
    assert [parse(r).event_id for r in raws] == ids
    assert raws == [envelope.event_bytes(parse(r)) for r in raws]  # canonical bytes
    assert envelope.verify_stored_chain(AGENT, [(r.seq, r.raw, r.hash) for r in rows]) == 7


def test_unacked_events_are_resent_as_the_same_bytes_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox.open(path, AGENT)
    for i in range(3):
        box.put(alert(str(i)))
    box.resume(0, b"")
    box.chain_pending(10)
    before = box.chained_after(0, 10, 1 << 20)
    box.close()
    again = Outbox.open(path, AGENT)
    assert again.chained_after(0, 10, 1 << 20) == before
    again.close()


def test_ack_forgets_events_and_the_chain_continues_from_them(box: Outbox) -> None:
    for i in range(5):
        box.put(alert(str(i)))
    box.resume(0, b"")
    box.chain_pending(3)
    _, first = box.chained_after(0, 10, 1 << 20)
    assert box.ack(2) == 2
    counts = box.counts()
    assert counts.unacked == 1 and counts.pending == 2
    assert counts.base == (2, first[1].hash)
    box.chain_pending(10)
    prev, rows = box.chained_after(2, 10, 1 << 20)
    assert prev == first[1].hash and [r.seq for r in rows] == [3, 4, 5]
    assert rows[0].hash == first[2].hash  # seq 3 kept its bytes and hash
    assert [r.hash for r in rows] == envelope.chain(prev, [r.raw for r in rows])
    assert box.ack(2) == 0  # a repeated ack changes nothing


def test_batches_respect_the_byte_budget_but_always_carry_one_event(box: Outbox) -> None:
    for i in range(4):
        box.put(events_pb2.Event(test_alert=events_pb2.TestAlert(note=str(i) * 1000)))
    box.resume(0, b"")
    box.chain_pending(10)
    _, rows = box.chained_after(0, 10, 2500)
    assert [r.seq for r in rows] == [1, 2]
    _, rows = box.chained_after(0, 10, 10)
    assert [r.seq for r in rows] == [1]


def test_a_fresh_outbox_adopts_the_collectors_chain_head(box: Outbox) -> None:
    head = bytes(range(32))
    box.put(alert("after recovery"))
    box.resume(41, head)
    box.chain_pending(10)
    prev, rows = box.chained_after(41, 10, 1 << 20)
    assert prev == head and rows[0].seq == 42
    assert rows[0].hash == envelope.link(head, rows[0].raw)


def test_welcome_drops_what_the_collector_already_committed(box: Outbox) -> None:
    for i in range(5):
        box.put(alert(str(i)))
    box.resume(0, b"")
    box.chain_pending(10)
    _, rows = box.chained_after(0, 10, 1 << 20)
    box.resume(3, rows[2].hash)  # the acks for 1..3 were lost
    counts = box.counts()
    assert counts.base == (3, rows[2].hash) and counts.unacked == 2
    assert box.chained_after(3, 10, 1 << 20) == (rows[2].hash, rows[3:])


def test_a_collector_ahead_of_a_stale_outbox_is_followed(
    box: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    box.put(alert("a"))
    box.resume(0, b"")
    box.chain_pending(10)
    head = b"\x07" * 32
    with caplog.at_level(logging.WARNING):
        box.resume(9, head)  # e.g. the PC's disk was rolled back to a snapshot
    assert "chain.adopt_collector_head" in caplog.text
    assert box.counts().base == (9, head) and box.counts().unacked == 0


def _acked_box(tmp_path: Path, n: int, **kw: float) -> Outbox:
    box = Outbox.open(tmp_path / "kept.sqlite", AGENT, **kw)  # type: ignore[arg-type]
    for i in range(n):
        box.put(alert(str(i)))
    box.resume(0, b"")
    box.chain_pending(n)
    box.ack(n)
    return box


def test_acknowledged_events_are_kept_and_sent_again_to_a_collector_that_lost_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = _acked_box(tmp_path, 5)
    assert box.counts().kept == 5 and box.counts().unacked == 0
    _, rows = box.chained_after(0, 10, 1 << 20)
    with caplog.at_level(logging.WARNING):
        box.resume(2, rows[1].hash)  # restored from a backup that holds seqs 1-2
    assert "chain.collector_behind collector=2 acked=5 resend_from=3 lost=0" in caplog.text
    assert box.counts().base == (2, rows[1].hash) and box.counts().unacked == 3
    prev, again = box.chained_after(2, 10, 1 << 20)
    assert prev == rows[1].hash and [r.raw for r in again] == [r.raw for r in rows[2:]]
    box.ack(5)
    assert box.counts().unacked == 0 and box.counts().kept == 5


def test_a_collector_that_lost_everything_gets_everything_kept_again(tmp_path: Path) -> None:
    box = _acked_box(tmp_path, 3)
    box.resume(0, b"")  # a new database (recover) or a backup from before this PC's first event
    assert box.counts().base == (0, envelope.genesis(AGENT)) and box.counts().unacked == 3


def test_a_collector_behind_with_a_different_history_is_reported_not_resent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = _acked_box(tmp_path, 3)
    base = box.counts().base
    with caplog.at_level(logging.ERROR):
        box.resume(1, b"\x01" * 32)
    assert "chain.mismatch seq=1" in caplog.text
    assert box.counts().base == base and box.counts().unacked == 0


def test_a_collector_behind_what_is_kept_gets_what_is_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = _acked_box(tmp_path, 10, max_kept=4)  # seqs 7-10 kept
    assert box.counts().kept == 4
    with caplog.at_level(logging.WARNING):
        box.resume(2, b"\x02" * 32)
    # 3-7 are gone here too (7's hash is the prev of 8): the collector sees, and records, that gap
    assert "chain.collector_behind collector=2 acked=10 resend_from=8 lost=5" in caplog.text
    assert box.counts().base is not None and box.counts().base[0] == 7
    assert box.counts().unacked == 3


def test_kept_events_older_than_the_window_are_forgotten(tmp_path: Path) -> None:
    box = _acked_box(tmp_path, 3, keep_acked_s=0)
    assert box.counts().kept == 0  # forgotten at the ack that made them kept
    box.resume(1, b"\x01" * 32)  # nothing to resend: reported, the base stays
    assert box.counts().base is not None and box.counts().base[0] == 3


def test_kept_events_go_first_at_the_bound(tmp_path: Path) -> None:
    box = _acked_box(tmp_path, 3, max_pending=4)
    for i in range(3):
        box.put(alert(f"new {i}"))
    counts = box.counts()
    assert counts.pending == 3 and counts.kept == 1 and counts.dropped == 0
    _, rows = box.chained_after(0, 10, 1 << 20)
    assert [r.seq for r in rows] == [3]  # the newest kept event stays


def test_an_outbox_of_the_previous_schema_is_upgraded_with_its_events(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY NOT NULL) STRICT;"
        "CREATE TABLE queued (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,"
        " severity INTEGER NOT NULL, body BLOB NOT NULL, is_counter INTEGER NOT NULL DEFAULT 0)"
        " STRICT;"
        "CREATE TABLE chained (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,"
        " raw BLOB NOT NULL, hash BLOB NOT NULL) STRICT;"
        "INSERT INTO meta VALUES ('base_seq', 0), ('base_hash', x'00');"
        "INSERT INTO chained VALUES (1, 'e1', x'01', x'02');"
        "PRAGMA user_version = 1;"
    )
    conn.execute("INSERT INTO meta VALUES ('agent_id', ?)", (AGENT,))
    conn.commit()
    conn.close()
    box = Outbox.open(path, AGENT)
    assert box.counts().unacked == 1 and box.counts().kept == 0
    box.ack(1)
    assert box.counts().kept == 1


def test_a_welcome_without_a_head_hash_is_refused(box: Outbox) -> None:
    with pytest.raises(OutboxError, match="head_hash"):
        box.resume(5, b"")


def test_an_outbox_belongs_to_one_agent(tmp_path: Path) -> None:
    Outbox.open(tmp_path / "o.sqlite", AGENT).close()
    with pytest.raises(OutboxError, match="belongs to agent"):
        Outbox.open(tmp_path / "o.sqlite", "ag-someone-else")


def test_an_event_too_big_to_ship_is_refused_at_put(box: Outbox) -> None:
    with pytest.raises(ValueError, match="exceeds"):
        box.put(alert("x" * MAX_EVENT_BYTES))
    assert box.counts().pending == 0


def test_put_keeps_given_ids_and_times_and_never_a_seq(box: Outbox, tmp_path: Path) -> None:
    event = alert("a")
    event.event_id, event.observed_unix_ms, event.seq = "abc", 123, 99
    assert box.put(event) == "abc"
    with sqlite3.connect(tmp_path / "outbox.sqlite") as conn:
        (body,) = conn.execute("SELECT body FROM queued").fetchone()
    stored = parse(body)
    assert (stored.event_id, stored.observed_unix_ms, stored.seq) == ("abc", 123, 0)


def test_files_are_private_and_in_wal_mode(box: Outbox, tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    assert path.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_wait_for_work_wakes_on_a_put_from_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    shipper_side = Outbox.open(path, AGENT)
    other = Outbox.open(path, AGENT)
    assert not shipper_side.wait_for_work(0.05, poll=0.01)
    other.put(alert("from test-alert"))
    assert shipper_side.wait_for_work(5.0, poll=0.01)
    other.close()
    shipper_side.close()
