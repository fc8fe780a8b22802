"""Screenshots go with their events, or sooner if the policy says (screenshots.toml's
`retention_days`), and never while their event is evidence of an open incident.

Called by retention.purge inside its transaction (rows) and after it (files): a held file
whose event the purge deleted, or that no stored event ever named (the event never came), goes
once it is older than the events period. Part-sent files an agent never finished go after
PART_DAYS. Returns what it deleted, for the purge's audit row.
"""

from __future__ import annotations

import logging
import time

import duckdb

from collector import policy
from collector.paths import DataDir

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
PART_DAYS = 7  # an upload not finished in a week is not coming

# Screenshots whose event is a signal of an incident still open are kept whatever the period.
_OPEN = ("EXISTS (SELECT 1 FROM events e JOIN incident_signals sig ON sig.agent_id = e.agent_id "
         "AND sig.seq = e.seq JOIN incidents i ON i.id = sig.incident_id AND i.status <> 'closed' "
         "WHERE e.agent_id = s.agent_id AND e.event_id = s.event_id)")  # fmt: skip


def purge_rows(con: duckdb.DuckDBPyConnection, data: DataDir, events_cut_ms: int,
               now: int) -> list[str]:  # fmt: skip
    """Delete the rows of screenshots past their period; returns their files (relative)."""
    gone = con.execute(
        "DELETE FROM screenshots s WHERE received_ms < ? AND NOT EXISTS (SELECT 1 FROM events e "
        "WHERE e.agent_id = s.agent_id AND e.event_id = s.event_id) RETURNING path",
        [events_cut_ms],
    ).fetchall()
    days = policy.screenshot_retention_days(data)
    if days > 0:
        gone += con.execute(
            f"DELETE FROM screenshots s WHERE received_ms < ? AND NOT {_OPEN} RETURNING path",  # noqa: S608 -- our own SQL
            [now - days * DAY_MS],
        ).fetchall()
    return [str(r[0]) for r in gone]


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
