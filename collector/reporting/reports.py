"""The head teacher's weekly report and the governors' summary.

The weekly report names no pupil either (it is about the school's picture, not a case); the
governors' summary is counts and trends only: by category, severity, outcome and week. Charts
are PNGs drawn with matplotlib's non-interactive backend and embedded in the page.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
from typing import Any

import duckdb
import matplotlib

from collector.intake import vocabulary

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# Its INFO lines ("Using categorical units...") say nothing a school needs in the collector log.
logging.getLogger("matplotlib").setLevel(logging.WARNING)

DAY_MS = 86_400_000


def _ms(d: dt.date) -> int:
    return int(dt.datetime.combine(d, dt.time(), dt.UTC).timestamp() * 1000)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
    return con.execute(sql, args).fetchall()


def _categories(rows: list[tuple[Any, ...]], known: frozenset[str] | None) -> list[tuple[Any, int]]:
    """Counts by category, each category as a page may show it: one no policy defines is
    counted under "unknown" (collector/intake/vocabulary.py), never named. Ingest keeps such events
    from becoming candidates; this holds even for candidates made before it did."""
    if known is None:
        return [(c, n) for c, n in rows]
    merged: dict[str, int] = {}
    for category, n in rows:
        name = vocabulary.shown(category, known)
        merged[name] = merged.get(name, 0) + n
    return sorted(merged.items(), key=lambda kv: -kv[1])


def weekly(
    con: duckdb.DuckDBPyConnection, week_start: dt.date, known: frozenset[str] | None = None
) -> dict[str, Any]:
    """Monday to Sunday starting at week_start. `known`: the categories policies define."""
    lo, hi = _ms(week_start), _ms(week_start + dt.timedelta(days=7))
    by_cat = _rows(
        con,
        "SELECT category, count(*) FROM incidents WHERE first_ms >= ? AND "
        "first_ms < ? GROUP BY 1 ORDER BY 2 DESC",
        [lo, hi],
    )
    by_cat = _categories(by_cat, known)
    by_sev = _rows(
        con,
        "SELECT severity, count(*) FROM incidents WHERE first_ms >= ? AND "
        "first_ms < ? GROUP BY 1 ORDER BY 1",
        [lo, hi],
    )
    by_day = _rows(
        con,
        f"SELECT (first_ms - ?) // {DAY_MS} AS d, count(*) FROM incidents "  # noqa: S608 -- a constant
        "WHERE first_ms >= ? AND first_ms < ? GROUP BY 1 ORDER BY 1",
        [lo, lo, hi],
    )
    outcomes = _rows(
        con,
        "SELECT outcome, count(*) FROM incidents WHERE closed_ms >= ? AND "
        "closed_ms < ? GROUP BY 1 ORDER BY 2 DESC",
        [lo, hi],
    )
    open_now = _rows(
        con, "SELECT status, count(*) FROM incidents WHERE status <> 'closed' GROUP BY 1", []
    )
    pending = _rows(con, "SELECT count(*) FROM referrals WHERE state = 'pending'", [])
    overdue = _rows(
        con,
        "SELECT count(*) FROM incident_actions WHERE kind = 'follow_up' AND "
        "done_ms IS NULL AND due_date < current_date",
        [],
    )
    exempted = _rows(
        con,
        "SELECT exemption, count(*) FROM exempted_matches WHERE "
        "observed_ms >= ? AND observed_ms < ? GROUP BY 1",
        [lo, hi],
    )
    days = [0] * 7
    for d, n in by_day:
        days[int(d)] = n
    labels = [(week_start + dt.timedelta(days=i)).strftime("%a %d") for i in range(7)]
    return {
        "week_start": week_start,
        "total": sum(n for _, n in by_cat),
        "by_category": by_cat,
        "by_severity": by_sev,
        "outcomes": outcomes,
        "open": dict(open_now),
        "pending_referrals": pending[0][0],
        "overdue_actions": overdue[0][0],
        "exempted": exempted,
        "charts": {
            "days": bar_png(labels, days, "New candidates per day"),
            "categories": bar_png(
                [c for c, _ in by_cat], [n for _, n in by_cat], "By category", horizontal=True
            ),
        },
    }


SMALL = 3  # governors see "fewer than 3", not 1 or 2: in a small school a count can name a child


def _suppressed(rows: list[tuple[Any, int]]) -> list[tuple[Any, str]]:
    """Counts as governors see them: small ones hidden (statistical disclosure control)."""
    return [(key, f"fewer than {SMALL}" if 0 < n < SMALL else str(n)) for key, n in rows]


def governors(
    con: duckdb.DuckDBPyConnection, weeks: int, today: dt.date,
    known: frozenset[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Counts and trends only: no names, accounts, machines, terms or sites. `known`: the
    categories policies define; any other is counted as "unknown"."""
    start = today - dt.timedelta(days=today.weekday()) - dt.timedelta(weeks=weeks - 1)
    lo = _ms(start)
    trend = _rows(
        con,
        f"SELECT (first_ms - ?) // {7 * DAY_MS} AS w, count(*) FROM incidents "  # noqa: S608 -- a constant
        "WHERE first_ms >= ? AND kind = 'detection' GROUP BY 1 ORDER BY 1",
        [lo, lo],
    )
    per_week = [0] * weeks
    for w, n in trend:
        if 0 <= int(w) < weeks:
            per_week[int(w)] = n
    by_cat = _rows(
        con,
        "SELECT category, count(*) FROM incidents WHERE first_ms >= ? AND "
        "kind = 'detection' GROUP BY 1 ORDER BY 2 DESC",
        [lo],
    )
    by_cat = _categories(by_cat, known)
    by_sev = _rows(
        con,
        "SELECT severity, count(*) FROM incidents WHERE first_ms >= ? GROUP BY 1 ORDER BY 1",
        [lo],
    )
    outcomes = _rows(
        con,
        "SELECT outcome, count(*) FROM incidents WHERE closed_ms >= ? GROUP BY 1 ORDER BY 2 DESC",
        [lo],
    )
    coverage = _rows(
        con,
        "SELECT count(*) FILTER (WHERE revoked_ms IS NULL), "
        "count(*) FILTER (WHERE revoked_ms IS NULL AND last_seen_ms >= ?) "
        "FROM agents",
        [_ms(today) - 7 * DAY_MS],
    )
    labels = [(start + dt.timedelta(weeks=i)).strftime("%d %b") for i in range(weeks)]
    # Small weeks hidden too: else the weekly counts would add up to what the tables hide.
    hidden = [f"{label}*" if 0 < n < SMALL else label for label, n in zip(labels, per_week,
                                                                          strict=True)]  # fmt: skip
    per_week = [0 if 0 < n < SMALL else n for n in per_week]
    return {
        "start": start,
        "weeks": weeks,
        "per_week": list(zip(hidden, per_week, strict=True)),
        "by_category": _suppressed(by_cat),
        "by_severity": _suppressed(by_sev),
        "outcomes": _suppressed(outcomes),
        "machines": coverage[0][0],
        "reporting": coverage[0][1],
        "chart": bar_png(hidden, per_week, "Safeguarding candidates per week (* fewer than 3)"),
    }


def bar_png(labels: list[str], values: list[int], title: str, horizontal: bool = False) -> str:
    """A small bar chart as a data: URI (the console's CSP allows data: images only)."""
    fig, ax = plt.subplots(figsize=(6.4, 2.6), dpi=100)
    try:
        if horizontal:
            ax.barh(labels or ["none"], values or [0], color="#2f5d8a")
            ax.invert_yaxis()
        else:
            ax.bar(labels or ["none"], values or [0], color="#2f5d8a")
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
