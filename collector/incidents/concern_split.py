"""Candidates made before one concern per candidate (issue 17), brought in line at start.

Each detection candidate with no concern yet gets one: the concern of its categories, recorded
as a `concern_set` entry. One that mixed several concerns and that no one has triaged is
superseded, never rewritten: it is closed with the outcome "superseded" (a `superseded` entry
in its record; its evidence stays with it), and its events are judged again, so one candidate
per concern takes them. One a DSL has already worked on keeps its history, marked "mixed".
"""

from __future__ import annotations

import logging

from collector.incidents.concerns import concern_of
from collector.incidents.engine import Engine
from collector.integrity import records
from collector.storage.store import Store, now_ms

log = logging.getLogger(__name__)
MIXED = "mixed"


def split_by_concern(engine: Engine, store: Store) -> dict[str, int]:
    con = store.con
    rows = con.execute(
        "SELECT id, categories, triaged OR status <> 'new' FROM incidents "
        "WHERE kind = 'detection' AND coalesce(concern, '') = '' ORDER BY id"
    ).fetchall()
    if not rows:
        return {"set": 0, "superseded": 0, "kept_mixed": 0}
    entries: list[records.Entry] = []
    superseded: list[int] = []
    counts = {"set": 0, "superseded": 0, "kept_mixed": 0}
    with store.transaction():
        for iid, categories, worked_on in rows:
            concerns = {concern_of("detection", c) for c in str(categories).split(",") if c}
            if len(concerns) <= 1:
                concern = next(iter(concerns), "")
                con.execute("UPDATE incidents SET concern = ? WHERE id = ?", [concern, iid])
                entries.append(records.Entry(int(iid), "concern_set", {"concern": concern}))
                counts["set"] += 1
            elif worked_on:
                con.execute("UPDATE incidents SET concern = ? WHERE id = ?", [MIXED, iid])
                entries.append(records.Entry(int(iid), "concern_set", {"concern": MIXED}))
                counts["kept_mixed"] += 1
            else:
                note = "its events now sit in one candidate per concern (see Related)"
                con.execute(
                    "UPDATE incidents SET status = 'closed', outcome = 'superseded', "
                    "triaged = true, outcome_note = ?, closed_by = ?, closed_ms = ?, "
                    "concern = ? WHERE id = ?",
                    [note, records.ENGINE, now_ms(), MIXED, iid],
                )
                entries.append(records.Entry(int(iid), "superseded", {
                    "status": "closed", "outcome": "superseded", "outcome_note": note,
                    "closed_by": records.ENGINE, "concern": MIXED}))  # fmt: skip
                superseded.append(int(iid))
                counts["superseded"] += 1
        if engine.record_key is not None:
            records.append(store, engine.record_key, entries)
    if superseded:
        events = con.execute(
            "SELECT e.agent_id, e.seq, e.kind, e.observed_ms, e.raw FROM events e "
            "JOIN incident_signals s ON s.agent_id = e.agent_id AND s.seq = e.seq "
            "WHERE list_contains(?, s.incident_id) AND e.malformed IS NULL "
            "ORDER BY e.observed_ms, e.agent_id, e.seq",
            [superseded],
        ).fetchall()
        engine.process(store, events, notify=False)
    log.warning("incidents.concerns_split set=%d superseded=%d kept_mixed=%d",
                counts["set"], counts["superseded"], counts["kept_mixed"])  # fmt: skip
    return counts
