"""Screenshots go with their events, or sooner if the policy says (screenshots.toml's
`retention_days`), and never while their event is evidence of an open incident.

Called by retention.purge inside its transaction (rows) and after it (files): a held file no
stored event names by its hash (the purge deleted the event, the event never came, or it names
another file) goes once it is older than the events period. Part-sent files an agent never
finished go after PART_DAYS. Returns what it deleted, for the purge's audit row.
"""

from __future__ import annotations

import logging
import time

import duckdb
from google.protobuf.message import DecodeError

from collector import policy
from collector.paths import DataDir
from protos import events_pb2

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
PART_DAYS = 7  # an upload not finished in a week is not coming

def purge_rows(con: duckdb.DuckDBPyConnection, data: DataDir, events_cut_ms: int,
               now: int) -> list[str]:  # fmt: skip
    """Delete the rows of screenshots past their period; returns their files (relative)."""
    days = policy.screenshot_retention_days(data)
    stale = [key for key, naming in _held_before(con, events_cut_ms).items() if not naming]
    if days > 0:  # sooner, unless the event that names it is evidence of an open incident
        stale += [key for key, naming in _held_before(con, now - days * DAY_MS).items()
                  if not any(naming.values()) and key not in stale]  # fmt: skip
    gone = []
    for agent_id, sha in stale:
        gone += con.execute("DELETE FROM screenshots WHERE agent_id = ? AND sha256 = ? "
                            "RETURNING path", [agent_id, sha]).fetchall()  # fmt: skip
    return [str(r[0]) for r in gone]


def _held_before(con: duckdb.DuckDBPyConnection,
                 cut_ms: int) -> dict[tuple[str, str], dict[int, bool]]:  # fmt: skip
    """Screenshots received before cut_ms, each with the stored events that name it by its
    hash (seq -> whether it is evidence of an open incident). None names it when its event is
    gone (purged), never came, or names another file (an upload under its id that the event
    does not vouch for)."""
    rows = con.execute(
        "SELECT s.agent_id, s.sha256, e.seq, e.raw, EXISTS (SELECT 1 FROM incident_signals sig "
        "JOIN incidents i ON i.id = sig.incident_id AND i.status <> 'closed' "
        "WHERE sig.agent_id = e.agent_id AND sig.seq = e.seq) FROM screenshots s "
        "LEFT JOIN events e ON e.agent_id = s.agent_id AND e.event_id = s.event_id "
        "WHERE s.received_ms < ?",
        [cut_ms],
    ).fetchall()
    held: dict[tuple[str, str], dict[int, bool]] = {}
    for agent_id, sha, seq, raw, open_evidence in rows:
        naming = held.setdefault((agent_id, sha), {})
        if raw is not None and _names(raw, sha):
            naming[int(seq)] = bool(open_evidence)
    return held


def _names(raw: bytes, sha: str) -> bool:
    ev = events_pb2.Event()
    try:
        ev.ParseFromString(raw)
    except DecodeError:
        return False
    return ev.screenshot_sha256.hex() == sha


def delete_files(data: DataDir, paths: list[str]) -> int:
    """Delete purged files, and part-sent ones left too long; returns how many went."""
    n = 0
    for rel in paths:
        try:
            (data.root / rel).unlink()
            n += 1
        except FileNotFoundError:
            n += 1  # already gone: what matters is that it is not kept
        except OSError as exc:
            log.error("screenshot.not_deleted path=%s error=%s", rel, exc)
    cut = time.time() - PART_DAYS * 86_400
    if data.screenshots_dir.exists():
        for part in data.screenshots_dir.glob("*/*.part"):
            if part.stat().st_mtime < cut:
                part.unlink(missing_ok=True)
    return n
