"""The durable outbox: every event is committed here before anything else happens to it.

Two tables, one SQLite file in WAL mode:

    queued   events put but not yet chained: (id, event_id, severity, body) where body is the
             serialised Event without seq. Bounded by max_pending (see _enforce_bound).
    chained  events given a seq and hashed into the chain: (seq, event_id, raw, hash, acked_ms).
             `raw` is envelope.event_bytes(event) and is what gets signed, shipped and re-sent,
             byte for byte, until the collector acknowledges it.
    meta     agent_id, and the chain's base: (seq, hash) of the last event the collector has
             (acknowledged, or adopted from its Welcome). No base yet means a fresh outbox,
             which waits for the collector's Welcome before it chains anything.

Acknowledged events are *kept* (chained rows at or below the base, with the time of their
ack) for `keep_acked_s` (7 days) and at most `max_kept` of them, and they are the first to go
at the outbox's bound. A collector restored from a backup, or one that lost its newest commits,
says so in its Welcome (a head behind our base): the base moves back to its head and the kept
events after it are sent again, byte for byte, so nothing it had acknowledged is lost.

Durability: synchronous=FULL, so each commit fsyncs the WAL and survives a power cut, not just a
crash of this process (NORMAL would survive the crash but may lose the last commits on power
loss). The agent commits a few events a minute, so the fsync costs nothing that matters, and
"committed" can then honestly mean "will reach the collector". Every state change is one
transaction, so a kill -9 at any point leaves each event in exactly one place.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from agent.outbox_bound import drop_over_bound, new_event_id
from agent.outbox_file import BUSY_TIMEOUT_MS, CorruptOutbox, connect_or_recover, probe
from agent.outbox_wal import WalDamage, put_back, release_held
from agent.outbox_wal import inspect as inspect_wal
from protos import envelope, events_pb2

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 50_000
DEFAULT_KEEP_ACKED_S = 7 * 86_400
DEFAULT_MAX_KEPT = 20_000  # a week of a busy PC's events; a few MB
RESTART_WAIT_MS = 200  # how long emptying a recovered -wal waits for a reader
MAX_EVENT_BYTES = 256 * 1024  # far above any real event; keeps every event shippable


class OutboxError(Exception):
    """The outbox cannot do what was asked (wrong agent, bad chain head from the collector)."""


@dataclass(frozen=True)
class Chained:
    seq: int
    raw: bytes
    hash: bytes


@dataclass(frozen=True)
class Counts:
    pending: int  # queued, not yet chained
    unacked: int  # chained, waiting for the collector's Ack
    base: tuple[int, bytes] | None  # last seq the collector holds, as far as we know
    head: tuple[int, bytes] | None  # last seq chained here
    dropped: int = 0  # events given up at the bound since the outbox was made
    kept: int = 0  # acknowledged, kept to send again to a collector restored from a backup


class Outbox:
    """One connection, shared by the threads of one process behind a lock.

    Other processes (`safeguard-agent test-alert`) open their own Outbox on the same file;
    writers wait for each other through SQLite's busy timeout.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        agent_id: str,
        max_pending: int,
        keep_acked_s: float = DEFAULT_KEEP_ACKED_S,
        max_kept: int = DEFAULT_MAX_KEPT,
    ) -> None:
        self._conn = conn
        self._agent_id = agent_id
        self._max_pending = max_pending
        self._keep_acked_ms = int(keep_acked_s * 1000)
        self._max_kept = max_kept
        self._lock = threading.RLock()
        self._changed = threading.Event()
        self._seen_version = self._data_version()
        self._waiting: tuple[WalDamage, Path | None] | None = None  # rows to put back
        self._log_to_restart = False  # a damaged -wal's stale frames are still in the file

    @classmethod
    def open(
        cls,
        path: Path,
        agent_id: str,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        keep_acked_s: float = DEFAULT_KEEP_ACKED_S,
        max_kept: int = DEFAULT_MAX_KEPT,
    ) -> Self:
        """Open (or create) the outbox. A corrupt file is set aside and a new one started."""
        opened = connect_or_recover(path)
        box = cls(opened.conn, agent_id, max_pending, keep_acked_s, max_kept)
        try:
            box._claim(agent_id)
        except BaseException:
            opened.conn.close()
            raise
        if opened.kept_aside is not None:
            box._recovered(str(opened.kept_aside))
        elif opened.wal_damage is not None:
            box._put_back(opened.wal_damage, opened.wal_kept)
        return box

    def _put_back(self, damage: WalDamage, kept: Path | None) -> None:
        """Put what the damaged log lost back. On a full disk it waits in memory (the log's
        frames are overwritten by the next write) and is tried again at each put."""
        try:
            with self._tx():
                back = put_back(self._conn, damage, self._agent_id)
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            if self._waiting is None:
                log.error("outbox.wal_put_back_waiting rows=%d: the PC's disk is full; the rows "
                          "read from the damaged -wal are put back when space returns",
                          len(damage.rows))  # fmt: skip
            self._waiting = (damage, kept)
            return
        self._waiting = None
        self._restart_log()
        where = (f"the damaged -wal is kept as {kept}" if kept
                 else "no copy of the damaged -wal could be kept (disk full)")  # fmt: skip
        too_big = f"; {damage.unreadable_rows} too big to read" if damage.unreadable_rows else ""
        detail = (f"{damage.describe()}; put back {back.recovered} event(s) read from its "
                  f"frames ({back.rechained} in their chain, {back.requeued} queued again, "
                  f"{back.held} held for the collector's head){too_big}; {where}")  # fmt: skip
        log.error("outbox.wal_recovered rechained=%d requeued=%d skipped_acked=%d unreadable=%d "
                  "damaged_frames=%d", back.rechained, back.requeued, back.skipped,
                  damage.unreadable_rows, damage.damaged_frames)  # fmt: skip
        self._recovered(detail, count=back.recovered)

    def _restart_log(self) -> None:
        """Checkpoint and empty the -wal once what it lost is put back. SQLite goes on writing
        the log after its last good frame under the same salts, so the damaged frame's
        successors that the new writes do not overwrite would stay in the file looking like
        this log's frames: at the next start they would read as fresh damage, and their stale
        rows (events chained and acknowledged since) would be put back a second time. A log
        started afresh has new salts. On a full disk or a busy reader it is tried again at
        each put until it succeeds (SQLite's own restart after a full checkpoint also ends it)."""
        try:
            with self._lock:
                # A TRUNCATE checkpoint waits on the busy handler for readers to finish: a put
                # must not wait the 15 s other writers get, so it gives up after a moment.
                self._conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
                try:
                    row = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            busy, error = row[0], "busy (another connection reads it)"
        except sqlite3.OperationalError as exc:
            busy, error = 1, str(exc)
        if busy and not self._log_to_restart:
            log.warning("outbox.wal_not_restarted error=%s: tried again at each put", error)
        self._log_to_restart = bool(busy)

    def _recovered(self, detail: str, count: int = 0) -> None:
        status = events_pb2.AgentStatus(kind=events_pb2.AgentStatus.OUTBOX_RECOVERED,
                                        detail=detail, count=count)  # fmt: skip
        self.put(events_pb2.Event(status=status))

    @staticmethod
    def peek(path: Path) -> Counts:
        """The counts, read-only (``safeguard-agent status``): a missing file is not made, a
        damaged one is not set aside (the service does that, and records it, when it starts);
        CorruptOutbox says what is wrong with it."""
        damage = inspect_wal(Path(f"{path}-wal"))  # first: opening it would rebuild the -shm
        if damage is not None:
            raise CorruptOutbox(f"{damage.describe()}; the service reads back what it can and "
                                "reports it when it next starts")  # fmt: skip
        reason = probe(path)
        if reason is not None:
            raise CorruptOutbox(reason)
        if not path.exists():
            return Counts(0, 0, None, None)
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                   timeout=BUSY_TIMEOUT_MS / 1000)  # fmt: skip
        except sqlite3.Error as exc:
            raise CorruptOutbox(f"cannot be read: {exc}") from None
        try:
            return Outbox(conn, "", 0).counts()
        except sqlite3.Error as exc:  # e.g. a file with no tables yet
            raise CorruptOutbox(f"cannot be read: {exc}") from None
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- writing --------------------------------------------------------------------------

    def put(self, event: events_pb2.Event) -> str:
        """Commit one event (durably) and return its event_id. seq is assigned when chained."""
        if self._waiting is not None:
            self._put_back(*self._waiting)
        elif self._log_to_restart:
            self._restart_log()
        if not event.event_id:
            event.event_id = new_event_id()
        if not event.observed_unix_ms:
            event.observed_unix_ms = time.time_ns() // 1_000_000
        event.ClearField("seq")
        body = envelope.event_bytes(event)
        if len(body) > MAX_EVENT_BYTES:
            raise ValueError(f"event of {len(body)} bytes exceeds {MAX_EVENT_BYTES}")
        with self._tx():
            self._conn.execute(
                "INSERT INTO queued(event_id, severity, body) VALUES (?, ?, ?)",
                (event.event_id, event.severity, body),
            )
            drop_over_bound(self._conn, self._max_pending)
        self._changed.set()
        return event.event_id

    # -- the chain ------------------------------------------------------------------------

    def resume(self, last_seq: int, head_hash: bytes) -> None:
        """Line the outbox up with the collector's Welcome (what it has committed)."""
        with self._tx():
            release_held(self._conn, last_seq)
            base = self._base()
            if base is None or (last_seq > self._head(base)[0]):
                # A fresh outbox, or one older than the collector (restored from a snapshot):
                # nothing here is newer than what the collector holds, so continue its chain.
                if last_seq == 0:
                    head_hash = envelope.genesis(self._agent_id)
                elif len(head_hash) != envelope.HASH_LEN:
                    raise OutboxError("collector's Welcome has no valid head_hash")
                if base is not None:
                    log.warning("chain.adopt_collector_head ours=%d theirs=%d", base[0], last_seq)
                self._conn.execute("DELETE FROM chained")
                self._set_base(last_seq, head_hash)
                return
            if last_seq < base[0]:
                self._rewind(last_seq, head_hash, base)
                return
            ours = self._hash_at(last_seq, base)
            if last_seq and head_hash and ours != head_hash:
                log.error("chain.mismatch seq=%d (collector holds a different event)", last_seq)
            self._mark_acked(last_seq)
            self._set_base(last_seq, ours)

    def _rewind(self, last_seq: int, head_hash: bytes, base: tuple[int, bytes]) -> None:
        """The collector holds less than it acknowledged (restored from a backup, or its last
        commits lost): send again what we kept, from its head if we can."""
        if last_seq == 0:
            here: tuple[int, bytes] | None = (0, envelope.genesis(self._agent_id))
        else:
            row = self._conn.execute(
                "SELECT seq, hash FROM chained WHERE seq >= ? ORDER BY seq LIMIT 1", (last_seq,)
            ).fetchone()
            here = None if row is None else (int(row[0]), bytes(row[1]))
        if here is not None and here[0] == last_seq and head_hash and here[1] != head_hash:
            log.error("chain.mismatch seq=%d (collector holds a different event); not resending",
                      last_seq)  # fmt: skip
            return
        if here is None or here[0] >= base[0]:
            log.error("chain.collector_behind collector=%d acked=%d resent=0 lost=%d (older "
                      "than what this PC keeps; the collector records the gap)",
                      last_seq, base[0], base[0] - last_seq)  # fmt: skip
            return
        lost = here[0] - last_seq
        log.warning("chain.collector_behind collector=%d acked=%d resend_from=%d lost=%d",
                    last_seq, base[0], here[0] + 1, lost)  # fmt: skip
        self._conn.execute("UPDATE chained SET acked_ms = NULL WHERE seq > ?", (here[0],))
        self._set_base(*here)

    def chain_pending(self, limit: int) -> int:
        """Give up to `limit` queued events their seq and hash, in one transaction."""
        if self._waiting is not None:  # first, so what it puts back can rejoin its chain
            self._put_back(*self._waiting)
        with self._tx():
            base = self._base()
            if base is None:
                return 0  # wait for the collector's Welcome
            seq, prev = self._head(base)
            rows = self._conn.execute(
                "SELECT id, event_id, body FROM queued ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
            for row_id, event_id, body in rows:
                event = events_pb2.Event.FromString(body)
                seq += 1
                event.seq = seq
                raw = envelope.event_bytes(event)
                prev = envelope.link(prev, raw)
                self._conn.execute(
                    "INSERT INTO chained(seq, event_id, raw, hash) VALUES (?, ?, ?, ?)",
                    (seq, event_id, raw, prev),
                )
                self._conn.execute("DELETE FROM queued WHERE id = ?", (row_id,))
            return len(rows)

    def chained_after(self, seq: int, limit: int, max_bytes: int) -> tuple[bytes, list[Chained]]:
        """(hash of `seq`, the chained events after it): at least one if any, within max_bytes."""
        with self._lock:
            base = self._base()
            if base is None:
                return b"", []
            prev = self._hash_at(seq, base)
            out: list[Chained] = []
            size = 0
            for s, raw, h in self._conn.execute(
                "SELECT seq, raw, hash FROM chained WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ):
                size += len(raw)
                if out and size > max_bytes:
                    break
                out.append(Chained(s, raw, h))
            return prev, out

    def ack(self, last_seq: int) -> int:
        """The collector committed everything up to last_seq: those events become kept."""
        with self._tx():
            row = self._conn.execute(
                "SELECT hash FROM chained WHERE seq = ?", (last_seq,)
            ).fetchone()
            if row is None:
                return 0
            acked = self._mark_acked(last_seq)
            self._set_base(last_seq, row[0])
            self._forget_kept(last_seq)
            return acked

    # -- reading --------------------------------------------------------------------------

    def counts(self) -> Counts:
        with self._lock:
            (pending,) = self._conn.execute("SELECT count(*) FROM queued").fetchone()
            base = self._base()
            (unacked,) = self._conn.execute(
                "SELECT count(*) FROM chained WHERE seq > ?", (-1 if base is None else base[0],)
            ).fetchone()
            (chained,) = self._conn.execute("SELECT count(*) FROM chained").fetchone()
            row = self._conn.execute("SELECT value FROM meta WHERE key='dropped_total'").fetchone()
            return Counts(pending, unacked, base, None if base is None else self._head(base),
                          int(row[0]) if row else 0, chained - unacked)  # fmt: skip

    def wait_for_work(self, timeout: float, poll: float = 0.2) -> bool:
        """Until timeout: True as soon as this or another process commits to the outbox."""
        deadline = time.monotonic() + timeout
        while True:
            if self._changed.wait(min(poll, max(0.0, deadline - time.monotonic()))):
                self._changed.clear()
                return True
            version = self._data_version()  # moves when another connection commits
            if version != self._seen_version:
                self._seen_version = version
                return True
            if time.monotonic() >= deadline:
                return False

    def wake(self) -> None:
        self._changed.set()

    # -- internals ------------------------------------------------------------------------

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn, self._lock)

    def _data_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _claim(self, agent_id: str) -> None:
        with self._tx():
            self._conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('agent_id', ?)", (agent_id,)
            )
            (owner,) = self._conn.execute("SELECT value FROM meta WHERE key='agent_id'").fetchone()
        if owner != agent_id:
            raise OutboxError(f"the outbox belongs to agent {owner}, not {agent_id}")

    def _mark_acked(self, last_seq: int) -> int:
        return self._conn.execute(
            "UPDATE chained SET acked_ms = ? WHERE seq <= ? AND acked_ms IS NULL",
            (time.time_ns() // 1_000_000, last_seq),
        ).rowcount

    def _forget_kept(self, base_seq: int) -> None:
        """Kept events older than the window, or beyond max_kept, go (oldest first)."""
        cutoff = time.time_ns() // 1_000_000 - self._keep_acked_ms
        (old,) = self._conn.execute(
            "SELECT max(seq) FROM chained WHERE acked_ms IS NOT NULL AND acked_ms <= ?", (cutoff,)
        ).fetchone()
        # Seqs are contiguous, so the oldest to keep is base - max_kept + 1.
        upto = min(base_seq, max(base_seq - self._max_kept, -1 if old is None else int(old)))
        if upto >= 0:
            self._conn.execute("DELETE FROM chained WHERE seq <= ?", (upto,))

    def _base(self) -> tuple[int, bytes] | None:
        row = self._conn.execute(
            "SELECT (SELECT value FROM meta WHERE key='base_seq'),"
            " (SELECT value FROM meta WHERE key='base_hash')"
        ).fetchone()
        return None if row[0] is None else (int(row[0]), bytes(row[1]))

    def _set_base(self, seq: int, digest: bytes) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            [("base_seq", seq), ("base_hash", digest)],
        )

    def _head(self, base: tuple[int, bytes]) -> tuple[int, bytes]:
        row = self._conn.execute("SELECT seq, hash FROM chained ORDER BY seq DESC LIMIT 1")
        last = row.fetchone()
        # Kept rows (at or below the base) are history: the chain goes on from the base.
        return base if last is None or last[0] <= base[0] else (int(last[0]), bytes(last[1]))

    def _hash_at(self, seq: int, base: tuple[int, bytes]) -> bytes:
        if seq == base[0]:
            return base[1]
        if seq == 0:
            return envelope.genesis(self._agent_id)
        row = self._conn.execute("SELECT hash FROM chained WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise OutboxError(f"no chained event {seq} (base {base[0]})")
        return bytes(row[0])


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT under the in-process lock; ROLLBACK on any exception.

    SQLite rolls a transaction back by itself when the disk fills (SQLITE_FULL): a ROLLBACK
    of ours then fails with "cannot rollback - no transaction is active", which used to hide
    the real error from the log and the caller. It is issued only while a transaction is
    open, and a full disk is named as such."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for other writers
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                try:
                    self._conn.execute("COMMIT")
                except BaseException as failed:
                    self._rollback(failed)
                    raise
            else:
                self._rollback(exc)
        finally:
            self._lock.release()

    def _rollback(self, cause: object) -> None:
        if isinstance(cause, sqlite3.Error) and _is_full(cause):
            now = time.monotonic()
            if now - _full_logged[0] >= 60:  # once a minute, not once per event
                _full_logged[0] = now
                log.error("outbox.disk_full detail=%s: the PC's disk is full; events cannot "
                          "be queued or shipped until space is freed", cause)  # fmt: skip
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


_full_logged = [-60.0]


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL


__all__ = ["BUSY_TIMEOUT_MS", "Chained", "Counts", "Outbox", "OutboxError", "new_event_id"]
