"""A damaged outbox `-wal`: what SQLite will not replay, and getting those events back.

SQLite replays the write-ahead log frame by frame and stops, silently, at the first frame whose
checksum fails: every transaction committed after it is dropped as if it never happened (one
damaged frame once lost 199 of 400 events without a word). Before the outbox opens the file,
`inspect` reads the log itself, as the format defines it (sqlite.org/fileformat2.html, "WAL
file format"), and finds committed frames of the current log that lie past a bad one. Their page
images are usually intact, and the outbox's rows are small, so `lost_rows` reads the event rows
out of the table leaf pages of those frames; the outbox puts back the ones it no longer has
(agent/outbox.py). What cannot be read is counted, and the damaged log is kept for a technician.

A torn write at a power cut is not damage: with synchronous=FULL a transaction counts as
committed only once its commit frame is on disk, and a torn, uncommitted tail has no commit
frame of the current log after the bad frame.
"""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path

from protos import envelope, events_pb2

_MAGIC = (0x377F0682, 0x377F0683)  # checksums little-endian, big-endian
_HEADER = 32
_FRAME_HEADER = 24
_EVENT_ID_LEN = 32  # agent.outbox_bound.new_event_id: 16 random bytes as hex


@dataclass(frozen=True)
class LostRow:
    table: str  # "queued" or "chained"
    rowid: int  # queued.id or chained.seq
    event_id: str
    values: tuple[object, ...]  # the row's columns after the rowid alias and event_id


@dataclass
class WalDamage:
    """A log with committed frames SQLite will not replay."""

    first_bad_frame: int  # 0-based
    frames: int  # frames of the current log in the file
    lost_commits: int  # committed transactions past the bad frame
    rows: dict[tuple[str, str], LostRow] = field(default_factory=dict)  # newest version seen
    unreadable_rows: int = 0  # rows too big to read from one page (overflow)
    damaged_frames: int = 0  # frames past the first bad one that fail their own checksum

    def describe(self) -> str:
        return (
            f"the -wal was damaged at frame {self.first_bad_frame + 1} of {self.frames}: "
            f"{self.lost_commits} committed transaction(s) after it were not replayed"
        )


def inspect(wal: Path, page_size_hint: int = 4096) -> WalDamage | None:
    """The damage in a -wal file, or None when SQLite will replay all it commits."""
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < _HEADER + _FRAME_HEADER:
        return None
    magic, _version, page_size, _ckpt, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    header_ok = magic in _MAGIC and _valid_page_size(page_size)
    big_endian = magic == _MAGIC[1]
    if header_ok:
        header_ok = _checksum(data[:24], (0, 0), big_endian) == (c1, c2)
    if not header_ok:
        # SQLite ignores the whole log. Its frames still name their log by their salts.
        page_size = page_size if _valid_page_size(page_size) else page_size_hint
        salt1, salt2 = struct.unpack(">2I", data[_HEADER + 8 : _HEADER + 16])
    frame_size = _FRAME_HEADER + page_size
    salts = (salt1, salt2)
    if magic in _MAGIC:
        frames, first_bad = _frames(data, frame_size, salts, (c1, c2), big_endian, header_ok)
    else:  # the byte order went with the magic number: take the one the frames agree with
        frames, first_bad = max((_frames(data, frame_size, salts, (c1, c2), order, header_ok)
                                 for order in (False, True)),
                                key=lambda got: sum(f[3] for f in got[0]))  # fmt: skip
    if first_bad is None:
        return None
    lost = frames[first_bad:]
    last_commit = max((i for i, (_, commit, _, _) in enumerate(lost) if commit), default=-1)
    if last_commit < 0:
        return None  # a torn, uncommitted tail: nothing committed is lost
    damage = WalDamage(first_bad, len(frames), sum(1 for _, c, _, _ in lost if c))
    for page_no, _, page, intact in lost[: last_commit + 1]:
        if intact:
            _read_leaf(page, page_no, page_size, damage)
        else:
            damage.damaged_frames += 1
    return damage


def _frames(
    data: bytes,
    frame_size: int,
    salts: tuple[int, int],
    seed: tuple[int, int],
    big_endian: bool,
    header_ok: bool,
) -> tuple[list[tuple[int, int, bytes, bool]], int | None]:
    """(page number, commit size, page, intact) of each frame of this log, and the index of
    the first bad one (None: SQLite replays them all).

    A frame is intact when its checksum follows from the sums its predecessor stored. The
    chain SQLite checks is cumulative, so past the first bad frame only this per-frame check
    can tell a damaged frame from a sound one. Rows are read from intact frames only: a
    flipped byte in a damaged frame once turned an event_id into another, and the event was
    queued again beside the copy the outbox still had (stored twice)."""
    frames: list[tuple[int, int, bytes, bool]] = []
    first_bad: int | None = None if header_ok else 0
    stored = seed  # what the previous frame (or the header) stored
    before: tuple[int, int] | None = None  # what the frame before that stored
    previous = b""  # the previous frame's checksummed bytes
    for offset in range(_HEADER, len(data) - frame_size + 1, frame_size):
        head = data[offset : offset + _FRAME_HEADER]
        page_no, commit, s1, s2, f1, f2 = struct.unpack(">6I", head)
        if (s1, s2) != salts:
            if first_bad is None:
                break  # the end of this log; older logs' frames follow
            continue
        summed = head[:8] + data[offset + _FRAME_HEADER : offset + frame_size]
        intact = _checksum(summed, stored, big_endian) == (f1, f2)
        if not intact and before is not None:
            # The previous frame's stored sums may be what was damaged, not this frame.
            intact = _checksum(summed, _checksum(previous, before, big_endian),
                               big_endian) == (f1, f2)  # fmt: skip
        if first_bad is None and not intact:
            first_bad = len(frames)
        frames.append((page_no, commit, summed[8:], intact))
        before, stored, previous = stored, (f1, f2), summed
    return frames, first_bad


def _valid_page_size(size: int) -> bool:
    return 512 <= size <= 65536 and size & (size - 1) == 0


def _checksum(data: bytes, sums: tuple[int, int], big_endian: bool) -> tuple[int, int]:
    s0, s1 = sums
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def _read_leaf(page: bytes, page_no: int, usable: int, damage: WalDamage) -> None:
    """Every outbox event row in a table leaf page (anything else is skipped)."""
    start = 100 if page_no == 1 else 0  # page 1 begins with the database header
    if len(page) < start + 8 or page[start] != 0x0D:
        return
    (cells,) = struct.unpack(">H", page[start + 3 : start + 5])
    limit = usable - 35  # the most payload a table leaf cell keeps on its page
    for i in range(cells):
        at = start + 8 + 2 * i
        if at + 2 > len(page):
            return
        (cell,) = struct.unpack(">H", page[at : at + 2])
        try:
            size, pos = _varint(page, cell)
            rowid, pos = _varint(page, pos)
            if size > limit:
                event_id = _event_id_of(page[pos : pos + limit])
                damage.unreadable_rows += event_id is not None
                continue
            row = _record(page[pos : pos + size])
        except (IndexError, ValueError, struct.error):
            continue  # not a cell after all (the page is not ours, or is garbage)
        lost = _as_event_row(rowid, row)
        if lost is not None:
            damage.rows[(lost.table, lost.event_id)] = lost


def _as_event_row(rowid: int, row: list[object]) -> LostRow | None:
    """queued: (id, event_id, severity, body, is_counter); chained: (seq, event_id, raw, hash
    [, acked_ms]). The rowid alias is stored as NULL."""
    if len(row) < 4 or row[0] is not None or not _is_event_id(row[1]):
        return None
    event_id = str(row[1])
    if len(row) == 5 and isinstance(row[2], int) and isinstance(row[3], bytes):
        return LostRow("queued", rowid, event_id, tuple(row[2:]))
    if isinstance(row[2], bytes) and isinstance(row[3], bytes) and len(row[3]) == 32:
        return LostRow("chained", rowid, event_id, tuple(row[2:]) + (None,) * (5 - len(row)))
    return None


def _is_event_id(value: object) -> bool:
    return (isinstance(value, str) and len(value) == _EVENT_ID_LEN
            and all(c in "0123456789abcdef" for c in value))  # fmt: skip


def _event_id_of(local: bytes) -> str | None:
    try:
        row = _record(local, partial=True)
    except (IndexError, ValueError, struct.error):
        return None
    return str(row[1]) if len(row) > 1 and _is_event_id(row[1]) else None


def _record(payload: bytes, partial: bool = False) -> list[object]:
    header_size, pos = _varint(payload, 0)
    types: list[int] = []
    while pos < header_size:
        serial, pos = _varint(payload, pos)
        types.append(serial)
    values: list[object] = []
    body = header_size
    for serial in types:
        size = _serial_size(serial)
        if body + size > len(payload):
            if partial:
                return values
            raise ValueError("record runs past its cell")
        chunk = payload[body : body + size]
        body += size
        if serial == 0:
            values.append(None)
        elif serial <= 6:
            values.append(int.from_bytes(chunk, "big", signed=True))
        elif serial == 7:
            values.append(struct.unpack(">d", chunk)[0])
        elif serial in (8, 9):
            values.append(serial - 8)
        elif serial >= 12 and serial % 2 == 0:
            values.append(bytes(chunk))
        elif serial >= 13:
            values.append(chunk.decode("utf-8"))
        else:
            raise ValueError(f"reserved serial type {serial}")
    return values


def _serial_size(serial: int) -> int:
    if serial < 12:
        return (0, 1, 2, 3, 4, 6, 8, 8, 0, 0, 0, 0)[serial]
    return (serial - 12) // 2 if serial % 2 == 0 else (serial - 13) // 2


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = data[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    raise ValueError("unreachable")


@dataclass(frozen=True)
class PutBack:
    rechained: int  # chained events put back as they were (same seq, bytes and hash)
    requeued: int  # events queued again (their chain position is gone)
    skipped: int  # acknowledged events the collector already holds
    held: int = 0  # chained events that may have reached the collector: see release_held

    @property
    def recovered(self) -> int:
        return self.rechained + self.requeued + self.held


def put_back(conn: sqlite3.Connection, damage: WalDamage, agent_id: str) -> PutBack:
    """Put the lost rows the outbox no longer has back into it (inside the caller's write
    transaction). Chained events that continue the surviving chain go back unchanged, so the
    collector sees the same bytes (a duplicate of what it may already hold). Chained events
    that cannot rejoin the chain (an event before them is lost) may have been shipped and
    committed although no ack was recorded: they are *held* until the collector's next Welcome
    says how far it got (release_held). Queued events are queued again under their event_id."""
    in_chain = {i for (i,) in conn.execute("SELECT event_id FROM chained")}
    in_queue = {i for (i,) in conn.execute("SELECT event_id FROM queued")}
    # Held from an earlier recovery: the collector's next Welcome decides; never queue anew.
    in_held = {i for (i,) in conn.execute("SELECT event_id FROM held")}
    chained = sorted((r for r in damage.rows.values()
                      if r.table == "chained" and r.event_id not in in_chain),
                     key=lambda r: r.rowid)  # fmt: skip
    taken = {r.event_id for r in chained}
    # Still queued here, but chained (and perhaps shipped and acknowledged) in the lost
    # frames: the lost state is the newer one, so the queued copy must not be chained anew.
    conn.executemany("DELETE FROM queued WHERE event_id = ?", [(i,) for i in taken & in_queue])
    have = in_chain | in_held | (in_queue - taken)
    lost = [r for r in damage.rows.values() if r.event_id not in have]
    base = conn.execute(
        "SELECT (SELECT value FROM meta WHERE key='base_seq'),"
        " (SELECT value FROM meta WHERE key='base_hash')"
    ).fetchone()
    top = conn.execute("SELECT seq, hash FROM chained ORDER BY seq DESC LIMIT 1").fetchone()
    head = top if top is not None else base
    rechained = skipped = 0
    again: list[tuple[str, int, bytes]] = []
    held: list[tuple[int, str, bytes]] = []
    for row in chained:
        raw, digest, acked_ms = row.values[0], row.values[1], row.values[2]
        assert isinstance(raw, bytes) and isinstance(digest, bytes)
        follows = head[0] is not None and row.rowid == int(head[0]) + 1
        if follows and envelope.link(bytes(head[1]), raw) == digest:
            conn.execute("INSERT INTO chained(seq, event_id, raw, hash) VALUES (?, ?, ?, ?)",
                         (row.rowid, row.event_id, raw, digest))  # fmt: skip
            head, rechained = (row.rowid, digest), rechained + 1
        elif acked_ms is not None:
            skipped += 1
        else:
            held.append((row.rowid, row.event_id, raw))
    for row in sorted((r for r in lost if r.table == "queued"), key=lambda r: r.rowid):
        if row.event_id not in taken:
            severity, body = row.values[0], row.values[1]
            assert isinstance(severity, int) and isinstance(body, bytes)
            again.append((row.event_id, severity, body))
    conn.executemany("INSERT INTO queued(event_id, severity, body) VALUES (?, ?, ?)", again)
    conn.executemany("INSERT OR IGNORE INTO held(seq, event_id, raw) VALUES (?, ?, ?)", held)
    return PutBack(rechained, len(again), skipped, len(held))


def release_held(conn: sqlite3.Connection, collector_seq: int) -> int:
    """At a Welcome (inside the caller's transaction): held events the collector has (seq at
    or below its head) are dropped; the rest are queued again, to be chained anew. Returns how
    many were queued."""
    rows = conn.execute("SELECT seq, event_id, raw FROM held ORDER BY seq").fetchall()
    if not rows:
        return 0
    again = []
    for seq, event_id, raw in rows:
        if seq > collector_seq:
            event = events_pb2.Event.FromString(raw)
            event.ClearField("seq")
            again.append((event_id, event.severity, envelope.event_bytes(event)))
    conn.executemany("INSERT OR IGNORE INTO queued(event_id, severity, body) VALUES (?, ?, ?)",
                     again)  # fmt: skip
    conn.execute("DELETE FROM held")
    return len(again)
