"""Opening the outbox's SQLite file: pragmas, schema, and setting a corrupt file aside.

A corrupt outbox must never stop the agent: the damaged file (with its -wal and -shm, which
belong to it and would otherwise be replayed into the new file) is renamed
`outbox.sqlite.corrupt-<UTC time>` for a technician to look at, and a new outbox is started.
The caller records that it happened as an AgentStatus(OUTBOX_RECOVERED) event. A damaged
`-wal` (agent/outbox_wal.py) is found before SQLite replays it, copied aside as
`outbox.sqlite-wal.damaged-<UTC time>`, and what it lost is put back by the caller.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from agent.outbox_wal import WalDamage
from agent.outbox_wal import inspect as inspect_wal

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 15_000  # other writers (test-alert, the shipper) hold the lock for milliseconds
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_SIDE_FILES = ("", "-wal", "-shm", "-journal")
_HEADER = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value ANY NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS queued (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the order events were put
    event_id TEXT NOT NULL UNIQUE,
    severity INTEGER NOT NULL,
    body BLOB NOT NULL,                     -- serialised Event, seq unset
    is_counter INTEGER NOT NULL DEFAULT 0   -- 1: the coalesced AgentStatus(DROPPED) event
) STRICT;
CREATE INDEX IF NOT EXISTS queued_victims ON queued (is_counter, severity, id);
CREATE TABLE IF NOT EXISTS chained (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    raw BLOB NOT NULL,                      -- envelope.event_bytes, sent as is until acked
    hash BLOB NOT NULL                      -- envelope.link(previous hash, raw)
) STRICT;
"""
# Version 2: acknowledged events are kept for a while (agent/outbox.py, "kept"), with the time
# of their acknowledgement, so a collector that lost its newest commits can be sent them again.
_MIGRATIONS = {
    2: """
ALTER TABLE chained ADD COLUMN acked_ms INTEGER;  -- NULL: not acknowledged yet
CREATE INDEX IF NOT EXISTS chained_kept ON chained (acked_ms) WHERE acked_ms IS NOT NULL;
""",
    # Version 3: chained events read back from a damaged -wal that cannot rejoin the chain wait
    # here for the collector's head (agent/outbox_wal.py, release_held).
    3: """
CREATE TABLE IF NOT EXISTS held (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    raw BLOB NOT NULL
) STRICT;
""",
}


class CorruptOutbox(Exception):
    """The file is not a usable SQLite database."""


@dataclass(frozen=True)
class Opened:
    conn: sqlite3.Connection
    kept_aside: Path | None  # where a corrupt file was kept (None when it was healthy)
    wal_damage: WalDamage | None  # committed transactions SQLite did not replay
    wal_kept: Path | None  # a copy of the damaged -wal, as it was


def connect_or_recover(path: Path) -> Opened:
    """Connect to the outbox; if it is corrupt, set it aside and start afresh. A damaged -wal
    is read (and copied aside) before SQLite opens it and drops what follows the damage."""
    wal = Path(f"{path}-wal")
    damage = inspect_wal(wal)
    wal_kept = None
    if damage is not None:
        wal_kept = _keep_copy(wal)
        log.error("outbox.wal_damaged detail=%r readable_rows=%d kept=%s", damage.describe(),
                  len(damage.rows), wal_kept)  # fmt: skip
    reason = probe(path)
    if reason is None:
        try:
            return Opened(_connect_patiently(path), None, damage, wal_kept)
        except CorruptOutbox as exc:  # found by the writable connection after all
            reason = str(exc)
    kept = set_aside(path)
    log.error("outbox.corrupt reason=%s kept=%s", reason, kept)
    return Opened(_connect_patiently(path), kept, damage, wal_kept)


def _connect_patiently(path: Path) -> sqlite3.Connection:
    """_connect, retried while another process holds the lock.

    Switching a new file to WAL while another process is doing the same fails at once with
    "database is locked" instead of waiting on the busy handler, so wait here instead.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return _connect(path)
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in _BUSY_CODES or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


KEPT_WAL_COPIES = 3  # damaged logs kept for a technician; older ones go


def _keep_copy(wal: Path) -> Path | None:
    """A copy of the damaged log, as it was; None when it cannot be made (a full disk: the rows
    are read already, and the agent must start all the same)."""
    kept = _unused_name(wal.with_name(f"{wal.name}.damaged-{_stamp()}"))
    try:
        shutil.copy2(wal, kept)
    except OSError as exc:
        kept.unlink(missing_ok=True)
        log.error("outbox.wal_not_kept error=%s: no copy of the damaged -wal was kept", exc)
        return None
    for old in sorted(wal.parent.glob(f"{wal.name}.damaged-*"))[:-KEPT_WAL_COPIES]:
        old.unlink(missing_ok=True)
    return kept


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _unused_name(wanted: Path) -> Path:
    """`wanted`, or `wanted-1`, `-2`... so nothing kept earlier is overwritten."""
    kept, n = wanted, 1
    while any(Path(f"{kept}{s}").exists() for s in _SIDE_FILES):
        kept, n = wanted.with_name(f"{wanted.name}-{n}"), n + 1
    return kept


def set_aside(path: Path) -> Path:
    kept = _unused_name(path.with_name(f"{path.name}.corrupt-{_stamp()}"))
    for suffix in _SIDE_FILES:
        part = Path(f"{path}{suffix}")
        if part.exists():
            part.replace(Path(f"{kept}{suffix}"))
    return kept


def probe(path: Path) -> str | None:
    """Why the file is corrupt, or None. Read-only, so SQLite neither checkpoints nor deletes
    the -wal of a damaged file before it is set aside: the technician gets it as it was."""
    try:
        with path.open("rb") as f:
            header = f.read(16)
    except FileNotFoundError:
        return None
    if header and header != _HEADER:
        return "file is not a database"
    conn = None
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
        (check,) = conn.execute("PRAGMA quick_check").fetchone()
        return None if check == "ok" else str(check)
    except sqlite3.DatabaseError as exc:
        # Anything but corruption (busy, no -shm yet): let the real connection decide.
        return str(exc) if _is_corrupt(exc) else None
    finally:
        if conn is not None:
            conn.close()


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _CORRUPT_CODES


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION in one write transaction, reading the version inside
    it (another process may have migrated the file meanwhile)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        scripts = [_SCHEMA] if version == 0 else []
        scripts += [_MIGRATIONS[v] for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1)]
        for script in scripts:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _connect(path: Path) -> sqlite3.Connection:
    if not path.exists():
        # Event contents are sensitive: create the file (and so its -wal, -shm) owner-only.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise sqlite3.OperationalError(f"cannot put the outbox in WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")  # why FULL: see agent/outbox.py
        (check,) = conn.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise CorruptOutbox(check)
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise sqlite3.OperationalError(
                f"outbox schema {version} is newer than this agent understands ({SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION:
            _migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _is_corrupt(exc):
            raise CorruptOutbox(str(exc)) from None
        raise
    except BaseException:
        conn.close()
        raise
    return conn
