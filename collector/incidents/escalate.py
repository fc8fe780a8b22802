"""Escalation: signals that combine raise a candidate's severity above its worst event.

- `[[escalation]]` in incidents.toml: within `within_minutes` of the candidate's last event,
  the same pupil (account; the machine when no one was logged in) has at least two distinct
  (source, category) signals among `categories` (self-harm and suicide language together), or,
  with `sequence`, a signal of the first source followed by one of the second: an extremist
  site (url) and then extremist searches (search: a query from a search engine's URL).
- `[[recurrence]]`: the same category on several different days, e.g. grooming phrases on two
  days within a fortnight.

Each rule that fires adds its `raise_by`; the severity is capped at 5 and the reasons are kept
on the candidate, so the DSL sees why it was raised.
"""

from __future__ import annotations

from collector.incidents.candidate import Candidate
from collector.incidents.config import EngineRules
from collector.storage.store import Store

DAY_MS = 86_400_000


def apply(rules: EngineRules, store: Store, cand: Candidate) -> None:
    cand.severity, cand.escalation = cand.base_severity, ""
    if cand.kind != "detection":
        return
    col, who = ("account", cand.account) if cand.account else ("agent_id", cand.agent_id)
    raise_by, why = 0, []
    for esc in rules.incidents.escalations:
        if not cand.categories & set(esc.categories):
            continue
        rows = store.con.execute(
            f"SELECT source, category, min(observed_ms), max(observed_ms) FROM incident_signals "  # noqa: S608 -- col is one of two fixed names
            f"WHERE {col} = ? AND observed_ms BETWEEN ? AND ? AND list_contains(?, category) "
            "GROUP BY source, category",
            [who, cand.last_ms - esc.within_minutes * 60_000, cand.last_ms, list(esc.categories)],
        ).fetchall()
        if esc.sequence:
            first, then = esc.sequence
            earliest = min((r[2] for r in rows if r[0] == first), default=None)
            fires = earliest is not None and any(r[0] == then and r[3] >= earliest for r in rows)
        else:  # a query typed into a search box is one signal, seen twice (keys and URL)
            fires = len({("keyword" if r[0] == "search" else r[0], r[1]) for r in rows}) >= 2
        if fires:
            raise_by += esc.raise_by
            why.append(esc.why)
    for rec in rules.recurrences:
        if rec.category not in cand.categories:
            continue
        row = store.con.execute(
            f"SELECT count(DISTINCT observed_ms // {DAY_MS}) FROM incident_signals "  # noqa: S608 -- fixed fragments
            f"WHERE {col} = ? AND category = ? AND observed_ms BETWEEN ? AND ?",
            [who, rec.category, cand.last_ms - rec.within_days * DAY_MS, cand.last_ms],
        ).fetchall()  # fetch to the end: DuckDB refuses other work while a result is open
        if row and row[0][0] >= rec.days:
            raise_by += rec.raise_by
            why.append(rec.why)
    cand.severity = min(5, cand.base_severity + raise_by)
    cand.escalation = " ".join(why)
