"""What the outbox gives up when it is full, and the one event that counts what it gave up.

Past `max_pending` queued events (the collector unreachable for days), events already
acknowledged and only kept in case the collector is restored from a backup go first (they
count against the same bound); then the oldest event of the lowest severity: a heartbeat from
Monday before a severity-5 detection from today.
Everything dropped is counted, per severity, in a single AgentStatus(DROPPED) event waiting in
the queue (`is_counter = 1`), which is never dropped itself; once it is chained and shipped, the
next drop starts a new one. It runs inside the caller's write transaction. The outbox also
keeps a running total (`meta.dropped_total`, for `safeguard-agent status`), and the log says
what was dropped at the first drop and then once a minute or per 1,000 drops, not once per
event (a burst once wrote 10,007 lines).
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time

from protos import envelope, events_pb2

log = logging.getLogger(__name__)
LOG_EVERY_S = 60.0
LOG_EVERY_N = 1000  # drops: a burst is seen in the log as it happens, not only a minute later
_unlogged = {"count": 0, "at": -LOG_EVERY_S}  # drops since the last log line, and when it was


def new_event_id() -> str:
    return secrets.token_hex(16)


def drop_over_bound(conn: sqlite3.Connection, max_pending: int) -> int:
    """Drop queued events beyond max_pending (the counter not included); return how many.
    Kept (acknowledged) events count against the bound and are forgotten first, uncounted:
    the collector has them."""
    lo, hi = conn.execute("SELECT min(id), max(id) FROM queued WHERE is_counter = 0").fetchone()
    kept_from, base = conn.execute(
        "SELECT (SELECT min(seq) FROM chained), (SELECT value FROM meta WHERE key='base_seq')"
    ).fetchone()
    kept = 0 if kept_from is None or base is None else max(0, int(base) - kept_from + 1)
    if hi is None or hi - lo + 1 + kept <= max_pending:  # ids only grow: a cheap upper bound
        return 0
    (n,) = conn.execute("SELECT count(*) FROM queued WHERE is_counter = 0").fetchone()
    if kept and n + kept > max_pending:  # seqs are contiguous: keep the newest `room` of them
        room = max(0, max_pending - n)
        conn.execute("DELETE FROM chained WHERE seq <= ?", (int(base) - room,))
    if n <= max_pending:
        return 0
    victims = conn.execute(
        "SELECT id, severity FROM queued WHERE is_counter = 0 ORDER BY severity, id LIMIT ?",
        (n - max_pending,),
    ).fetchall()
    conn.executemany("DELETE FROM queued WHERE id = ?", [(i,) for i, _ in victims])
    row = conn.execute("SELECT id, body FROM queued WHERE is_counter = 1").fetchone()
    counter = events_pb2.Event()
    if row is None:
        counter.event_id = new_event_id()
        counter.observed_unix_ms = time.time_ns() // 1_000_000
        counter.status.kind = events_pb2.AgentStatus.DROPPED
        counter.status.detail = f"outbox full: over {max_pending} unsent events"
    else:
        counter.ParseFromString(row[1])
    counter.status.count += len(victims)
    for _, severity in victims:
        counter.status.dropped_by_severity[severity] += 1
    body = envelope.event_bytes(counter)
    if row is None:
        conn.execute(
            "INSERT INTO queued(event_id, severity, body, is_counter) VALUES (?, 0, ?, 1)",
            (counter.event_id, body),
        )
    else:
        conn.execute("UPDATE queued SET body = ? WHERE id = ?", (body, row[0]))
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('dropped_total', ?) ON CONFLICT(key) DO UPDATE"
        " SET value = value + excluded.value",
        (len(victims),),
    )
    _unlogged["count"] += len(victims)
    now = time.monotonic()
    if now - _unlogged["at"] >= LOG_EVERY_S or _unlogged["count"] >= LOG_EVERY_N:
        log.warning("outbox.dropped count=%d since_last_line_s=%.0f pending_counter=%d",
                    _unlogged["count"], min(now - _unlogged["at"], LOG_EVERY_S * 60),
                    counter.status.count)  # fmt: skip
        _unlogged["count"], _unlogged["at"] = 0, now
    return len(victims)
