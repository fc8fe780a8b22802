"""Retention: events and closed incidents older than their periods are purged, and each purge
is written to the audit log (what, how many, older than when).

Periods live in the settings table (`retention.events_days`, `retention.incidents_days`), set
by the DSL or head teacher in the console or with `safeguard-collector retention`. Leavers'
roster rows go with the events period (collector/roster/book.py). Open
incidents are never purged, and nor are the events that are their evidence (nor the other
events of the signed batches that hold it, which its verification needs). A running
collector purges once a day by itself (`purge_if_due`), audited as `system:retention`.
Screenshots go with their events, or sooner by the policy
(collector/storage/screenshot_retention.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb

from collector.integrity import records
from collector.integrity.audit import Audit
from collector.paths import DataDir
from collector.roster import book
from collector.storage import screenshot_retention
from collector.storage.store import Store, now_ms

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
# Events: a school year and a term. Closed incidents: 6 years, a common schools' default for
# safeguarding records that were not referred; the DSL should set what the school's policy says.
DEFAULTS = {"retention.events_days": 365, "retention.incidents_days": 6 * 365}
LAST_PURGE = "retention.last_purge_ms"


@dataclass(frozen=True)
class Periods:
    events_days: int
    incidents_days: int


def periods(con: duckdb.DuckDBPyConnection) -> Periods:
    rows = con.execute("SELECT key, value FROM settings WHERE key LIKE 'retention.%'").fetchall()
    got = dict(rows)
    value = {k: int(got.get(k, v)) for k, v in DEFAULTS.items()}
    return Periods(value["retention.events_days"], value["retention.incidents_days"])


def set_periods(
    store: Store, audit: Audit, actor: str, events_days: int, incidents_days: int
) -> None:
    if not (30 <= events_days <= 3650 and 30 <= incidents_days <= 36500):
        raise ValueError("retention periods run from 30 days to 10 years (incidents: 100)")
    with store.transaction() as con:
        for key, val in (
            ("retention.events_days", events_days),
            ("retention.incidents_days", incidents_days),
        ):
            con.execute(
                "INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value",
                [key, str(val)],
            )
        audit.append(
            store,
            actor,
            "retention_set",
            "settings",
            f"events_days={events_days} incidents_days={incidents_days}",
        )


def purge(store: Store, audit: Audit, actor: str, now: int | None = None) -> dict[str, int]:
    """Delete what is past its period; returns counts. Runs on the writer thread."""
    now = now or now_ms()
    data = DataDir(store.path.parent)  # the data folder holds the database
    p = periods(store.con)
    ev_cut, inc_cut = now - p.events_days * DAY_MS, now - p.incidents_days * DAY_MS
    with store.transaction() as con:
        inc = con.execute(
            "DELETE FROM incidents WHERE status = 'closed' AND closed_ms < ? RETURNING id",
            [inc_cut],
        ).fetchall()
        ids = [r[0] for r in inc]
        if ids:
            for table in ("incident_signals", "incident_actions", "referrals", "exempted_matches"):
                con.execute(f"DELETE FROM {table} WHERE list_contains(?, incident_id)", [ids])  # noqa: S608 -- our table names
            records.purge(store, audit.key, ids, actor)  # their record's fields go too
        # Evidence is kept, and so is every other event of a signed batch holding evidence:
        # without them the batch's chain cannot be re-derived and "verify evidence" would
        # report untouched evidence as failed.
        row = con.execute(
            "DELETE FROM events e WHERE received_ms < ? AND NOT EXISTS (SELECT 1 FROM "
            "incident_signals s JOIN batches b ON b.agent_id = s.agent_id AND s.seq BETWEEN "
            "b.first_seq AND b.last_seq WHERE b.agent_id = e.agent_id AND e.seq BETWEEN "
            "b.first_seq AND b.last_seq)",
            [ev_cut],
        ).fetchone()
        events = int(row[0]) if row else 0
        con.execute(
            "DELETE FROM exempted_matches WHERE observed_ms < ? AND incident_id IS NULL", [ev_cut]
        )
        # Leavers' roster rows follow the events period, once no kept incident names them.
        left = book.purge_left(con, ev_cut)
        shots = screenshot_retention.purge_rows(con, data, ev_cut, now)
        result = {"events": events, "incidents": len(ids)} | ({"roster_left": left} if left else {})
        result |= {"screenshots": len(shots)} if shots else {}
        audit.append(
            store,
            actor,
            "purge",
            "retention",
            f"events={events} older_than_days={p.events_days} incidents={len(ids)} "
            f"closed_older_than_days={p.incidents_days}" + (f" roster_left={left}" if left else "")
            + (f" screenshots={len(shots)}" if shots else ""),
        )
        con.execute(
            "INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value",
            [LAST_PURGE, str(now)],
        )
    # Files after the commit: a file left by a failed delete is logged; a row never outlives it.
    screenshot_retention.delete_files(data, shots)
    log.info("retention.purged events=%d incidents=%d roster_left=%d screenshots=%d", events,
             len(ids), left, len(shots))  # fmt: skip
    return result


def purge_if_due(store: Store, audit: Audit, now: int | None = None) -> dict[str, int] | None:
    """The daily purge: runs if the last one (by anyone) was a day ago or more."""
    now = now or now_ms()
    row = store.con.execute("SELECT value FROM settings WHERE key = ?", [LAST_PURGE]).fetchone()
    if row is not None and now - int(row[0]) < DAY_MS:
        return None
    return purge(store, audit, "system:retention", now)
