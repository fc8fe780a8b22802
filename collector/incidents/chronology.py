"""A chronology per pupil (or per machine): every candidate, event and action in time order,
across machines and days, as DSLs and CPOMS keep one. Read-only; the console shows it, prints
it and exports it as CSV (collector/console/views_chronology.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb

from collector.incidents.concerns import title
from collector.incidents.staff_alerts import ABOUT_STAFF
from collector.incidents.triage import OUTCOMES, STATUSES

LIMIT = 5000  # rows on one page or export; a pupil's whole year is far fewer


Shown = Callable[[str], str]  # a category as a page may name it (collector/intake/vocabulary.py)


def of_pupil(con: duckdb.DuckDBPyConnection, account: str, shown: Shown,
             staff: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """`staff`: whether candidates about staff are in it (collector/incidents/staff_alerts.py);
    the console refuses a staff member's chronology outright to those who do not see them."""
    return _rows(con, "i.account = ?" + _NOT_STAFF * (not staff), account, shown)


def of_machine(con: duckdb.DuckDBPyConnection, agent_id: str,
               shown: Shown, staff: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    return _rows(con, "i.agent_id = ?" + _NOT_STAFF * (not staff), agent_id, shown)


_NOT_STAFF = f" AND NOT {ABOUT_STAFF}"


def _rows(con: duckdb.DuckDBPyConnection, where: str, value: str,
          shown: Shown) -> list[dict[str, Any]]:  # fmt: skip
    """(at_ms, what, detail, machine, by, incident id), oldest first. `where` is one of the two
    constant conditions above."""
    sql = f"""
        WITH inc AS (
            SELECT i.*, coalesce(a.hostname, i.agent_id) AS machine FROM incidents i
            LEFT JOIN agents a ON a.agent_id = i.agent_id WHERE {where}
        )
        SELECT first_ms AS at_ms, 'candidate' AS what, kind, coalesce(concern, '') AS concern,
               category, severity, status, '' AS text, machine, '' AS by_user, id AS incident_id,
               account
        FROM inc
        UNION ALL
        SELECT s.observed_ms, 'event', s.source, '', s.category, s.severity, '', '',
               inc.machine, '', inc.id, s.account
        FROM incident_signals s JOIN inc ON inc.id = s.incident_id
        UNION ALL
        SELECT x.at_ms, 'action', x.kind, '', '', NULL, '', x.text, inc.machine, x.by_user,
               inc.id, inc.account
        FROM incident_actions x JOIN inc ON inc.id = x.incident_id
        ORDER BY at_ms, incident_id, what LIMIT {LIMIT}
    """  # noqa: S608 -- `where` is a constant of this module; values are parameters
    cur = con.execute(sql, [value])
    names = [d[0] for d in cur.description or []]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for row in rows:
        row["category"] = shown(row["category"]) if row["category"] else ""
    return [_describe(row) for row in rows]


def _describe(row: dict[str, Any]) -> dict[str, Any]:
    """The row's one-line description, as the page and the export show it."""
    if row["what"] == "candidate":
        about = title(row["concern"]) if row["concern"] else row["category"].replace("_", " ")
        status = STATUSES.get(row["status"], row["status"])
        row["detail"] = (f"Candidate #{row['incident_id']} opened: {about}, severity "
                         f"{row['severity']} ({status} now)")  # fmt: skip
    elif row["what"] == "event":
        row["detail"] = (f"{row['kind']} detection: {row['category'].replace('_', ' ')}, "
                         f"severity {row['severity']}")  # fmt: skip
    else:
        text = row["text"]
        for key, label in OUTCOMES.items():  # outcomes read as the school records them
            text = text.replace(f"Closed: {key}", f"Closed: {label}")
        row["detail"] = f"{row['kind'].replace('_', ' ').capitalize()}: {text}"
    return row
