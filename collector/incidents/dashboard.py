"""What the DSL lands on (issue 17): what needs attention now, coverage, and this week against
the last, each count with the filtered list it stands for. Read-only, a few small queries."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from collector.incidents.concerns import concern_of, title
from collector.incidents.staff_alerts import ABOUT_STAFF

DAY_MS = 86_400_000
SHOWN = 5  # rows under each heading; the count links to the rest


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _seen(staff: bool) -> str:
    """A condition on incident `i`: every candidate, or none about staff (staff_alerts)."""
    return "true" if staff else f"NOT {ABOUT_STAFF}"


def attention(con: duckdb.DuckDBPyConnection, now_ms: int, today: dt.date,
              staff: bool = True) -> dict[str, Any]:  # fmt: skip
    """New severity 4-5, the oldest not yet reviewed, referrals waiting for a second person,
    and follow-ups past their date. `staff`: whether candidates about staff count."""
    seen = _seen(staff)
    base = ("SELECT i.id, i.severity, i.category, coalesce(i.concern, '') AS concern, i.account, "  # noqa: S608 -- constant
            "i.first_ms, i.last_ms, coalesce(a.hostname, i.agent_id) AS machine FROM incidents i "
            f"LEFT JOIN agents a ON a.agent_id = i.agent_id WHERE {seen} AND ")  # fmt: skip
    severe = _dicts(con.execute(
        base + "i.status = 'new' AND i.severity >= 4 "
        "ORDER BY i.severity DESC, i.last_ms DESC LIMIT ?", [SHOWN]))  # fmt: skip
    (severe_n,) = con.execute(
        f"SELECT count(*) FROM incidents i WHERE {seen} AND status = 'new' "  # noqa: S608 -- constant
        "AND severity >= 4").fetchone() or (0,)  # fmt: skip
    oldest = _dicts(con.execute(
        base + "i.status = 'new' ORDER BY i.first_ms LIMIT ?", [SHOWN]))  # fmt: skip
    (new_n,) = con.execute(
        f"SELECT count(*) FROM incidents i WHERE {seen} AND status = 'new'"  # noqa: S608 -- constant
    ).fetchone() or (0,)  # fmt: skip
    for row in severe + oldest:
        row["age_days"] = max(0, (now_ms - row["first_ms"]) // DAY_MS)
    referrals = _dicts(con.execute(
        "SELECT r.id, r.incident_id, r.outcome, r.requested_by, r.requested_ms FROM referrals r "  # noqa: S608 -- constant
        f"JOIN incidents i ON i.id = r.incident_id WHERE {seen} AND r.state = 'pending' "
        "ORDER BY r.requested_ms LIMIT ?", [SHOWN]))  # fmt: skip
    (referrals_n,) = con.execute(
        "SELECT count(*) FROM referrals r JOIN incidents i ON i.id = r.incident_id "  # noqa: S608 -- constant
        f"WHERE {seen} AND r.state = 'pending'").fetchone() or (0,)  # fmt: skip
    overdue = _dicts(con.execute(
        "SELECT x.incident_id, x.text, x.due_date FROM incident_actions x "  # noqa: S608 -- constant
        f"JOIN incidents i ON i.id = x.incident_id WHERE {seen} AND x.kind = 'follow_up' "
        "AND x.done_ms IS NULL AND x.due_date < ? ORDER BY x.due_date LIMIT ?",
        [today, SHOWN]))  # fmt: skip
    (overdue_n,) = con.execute(
        "SELECT count(*) FROM incident_actions x JOIN incidents i ON i.id = x.incident_id "  # noqa: S608 -- constant
        f"WHERE {seen} AND x.kind = 'follow_up' AND x.done_ms IS NULL AND x.due_date < ?",
        [today]).fetchone() or (0,)  # fmt: skip
    return {"severe": severe, "severe_n": severe_n, "oldest": oldest, "new_n": new_n,
            "referrals": referrals, "referrals_n": referrals_n, "overdue": overdue,
            "overdue_n": overdue_n}  # fmt: skip


def weeks(con: duckdb.DuckDBPyConnection, today: dt.date, staff: bool = True) -> dict[str, Any]:
    """Candidates by concern this week (Monday to today) against the whole of last week.
    `staff`: whether candidates about staff count."""
    monday = today - dt.timedelta(days=today.weekday())
    last_monday = monday - dt.timedelta(days=7)
    start = _ms(last_monday)
    rows = con.execute(
        "SELECT kind, category, first_ms >= ? AS this_week, count(*) FROM incidents i "  # noqa: S608 -- constant
        f"WHERE {_seen(staff)} AND first_ms >= ? AND first_ms < ? GROUP BY ALL",
        [_ms(monday), start, _ms(today + dt.timedelta(days=1))],
    ).fetchall()
    by: dict[str, list[int]] = {}
    for kind, category, this_week, n in rows:
        name = concern_of(kind, category) or kind
        pair = by.setdefault(name, [0, 0])
        pair[0 if this_week else 1] += int(n)
    ordered = sorted(by.items(), key=lambda x: (-x[1][0], x[0]))
    table: list[dict[str, Any]] = [
        {"concern": name, "title": title(name), "this": p[0], "last": p[1], "change": p[0] - p[1]}
        for name, p in ordered
    ]
    this, last = sum(p[0] for _, p in ordered), sum(p[1] for _, p in ordered)
    return {"monday": monday, "last_monday": last_monday, "rows": table, "this": this,
            "last": last}  # fmt: skip


def _ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)
