"""The head teacher's weekly report and the governors' summary.

The weekly report names no pupil either (it is about the school's picture, not a case); the
governors' summary is counts and trends only: by category, severity, outcome and week. Each
compares with the period before (last week; the previous weeks of the same length). Charts
are PNGs drawn with matplotlib's non-interactive backend and embedded in the page (and the PDF,
collector/reporting/report_pdfs.py); they show school days (weeks) only and whole numbers.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
from typing import Any

import duckdb
import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from collector.intake import vocabulary
from collector.reporting.school_days import Terms

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


def _by_category(
    con: duckdb.DuckDBPyConnection, lo: int, hi: int, known: frozenset[str] | None, extra: str = ""
) -> list[tuple[Any, int]]:
    rows = _rows(
        con,
        "SELECT category, count(*) FROM incidents WHERE first_ms >= ? AND "  # noqa: S608 -- a constant
        f"first_ms < ? {extra} GROUP BY 1 ORDER BY 2 DESC",
        [lo, hi],
    )
    return _categories(rows, known)


def compare(now: list[tuple[Any, int]], before: list[tuple[Any, int]]) -> list[dict[str, Any]]:
    """Per category: this period's count, the previous period's, and the change ("+2", "-1",
    "0"); every category either period saw, the busiest now first."""
    was = dict(before)
    rows = [{"key": k, "now": n, "before": was.pop(k, 0)} for k, n in now]
    rows += [{"key": k, "now": 0, "before": n} for k, n in was.items() if n]
    for r in rows:
        r["change"] = f"{r['now'] - r['before']:+d}" if r["now"] != r["before"] else "0"
    return rows


def weekly(
    con: duckdb.DuckDBPyConnection, week_start: dt.date, known: frozenset[str] | None = None,
    terms: Terms | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Monday to Sunday starting at week_start, against the week before. `known`: the categories
    policies define; `terms`: the school's terms (the daily chart shows school days only)."""
    terms = terms or Terms()
    lo, hi = _ms(week_start), _ms(week_start + dt.timedelta(days=7))
    by_cat = _by_category(con, lo, hi, known)
    last_week = _by_category(con, lo - 7 * DAY_MS, lo, known)
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
    counts = {int(d): n for d, n in by_day}
    days = [(d, counts.get((d - week_start).days, 0)) for d in terms.days(week_start, 7)]
    labels = [d.strftime("%a %d") for d, _ in days]
    return {
        "week_start": week_start,
        "total": sum(n for _, n in by_cat),
        "previous_total": sum(n for _, n in last_week),
        "by_category": by_cat,
        "trend": compare(by_cat, last_week),
        "days": days,
        "by_severity": by_sev,
        "outcomes": outcomes,
        "open": dict(open_now),
        "pending_referrals": pending[0][0],
        "overdue_actions": overdue[0][0],
        "exempted": exempted,
        "charts": {
            "days": bar_png(labels, [n for _, n in days], "New candidates per school day"),
            "categories": bar_png(
                [c for c, _ in by_cat], [n for _, n in by_cat], "By category", horizontal=True
            ),
        },
    }


SMALL = 3  # governors see "fewer than 3", not 1 or 2: in a small school a count can name a child


def _suppressed(rows: list[tuple[Any, int]]) -> list[tuple[Any, str]]:
    """Counts as governors see them: small ones hidden (statistical disclosure control)."""
    return [(key, f"fewer than {SMALL}" if 0 < n < SMALL else str(n)) for key, n in rows]


def _hidden_change(row: dict[str, Any]) -> dict[str, Any]:
    """A trend row as governors see it: a small count hidden, and then its change too (it
    would give the hidden count away)."""
    small = any(0 < row[k] < SMALL for k in ("now", "before"))
    shown = {k: f"fewer than {SMALL}" if 0 < row[k] < SMALL else str(row[k])
             for k in ("now", "before")}  # fmt: skip
    return {**row, **shown, "change": "" if small else row["change"]}


def governors(
    con: duckdb.DuckDBPyConnection, weeks: int, today: dt.date,
    known: frozenset[str] | None = None, terms: Terms | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Counts and trends only: no names, accounts, machines, terms or sites. `known`: the
    categories policies define; any other is counted as "unknown". Compared with the `weeks`
    before; the weekly chart leaves out weeks with no school day (`terms`)."""
    terms = terms or Terms()
    start = today - dt.timedelta(days=today.weekday()) - dt.timedelta(weeks=weeks - 1)
    lo = _ms(start)
    hi = _ms(start + dt.timedelta(weeks=weeks))
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
    detections = "AND kind = 'detection'"
    by_cat = _by_category(con, lo, hi, known, detections)
    before = _by_category(con, lo - (hi - lo), lo, known, detections)
    by_sev = _rows(
        con,
        "SELECT severity, count(*) FROM incidents WHERE first_ms >= ? GROUP BY 1 ORDER BY 1",
        [lo],
    )
    term = _term_trend(con, terms, today, known, detections)
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
    firsts = [start + dt.timedelta(weeks=i) for i in range(weeks)]
    # Small weeks hidden too: else the weekly counts would add up to what the tables hide.
    shown = [
        (f"{d.strftime('%d %b')}*" if 0 < n < SMALL else d.strftime("%d %b"),
         0 if 0 < n < SMALL else n)
        for d, n in zip(firsts, per_week, strict=True)
        if terms.any_school_day(d + dt.timedelta(days=i) for i in range(7))
    ]  # fmt: skip
    return {
        "start": start,
        "weeks": weeks,
        "per_week": shown,
        "by_category": _suppressed(by_cat),
        "trend": [_hidden_change(r) for r in compare(by_cat, before)],
        "previous_start": start - dt.timedelta(weeks=weeks),
        "term": term,
        "by_severity": _suppressed(by_sev),
        "outcomes": _suppressed(outcomes),
        "machines": coverage[0][0],
        "reporting": coverage[0][1],
        "chart": bar_png([label for label, _ in shown], [n for _, n in shown],
                         "Safeguarding candidates per school week (* fewer than 3)"),
    }  # fmt: skip


def _term_trend(
    con: duckdb.DuckDBPyConnection, terms: Terms, today: dt.date,
    known: frozenset[str] | None, extra: str,
) -> dict[str, Any] | None:  # fmt: skip
    """This term so far against the same number of days from the start of the term before
    (a whole term against a few weeks would read as a fall); None without term dates."""
    found = terms.this_and_last(today)
    if found is None:
        return None
    this, last, days = found
    now = _by_category(con, _ms(this), _ms(this) + days * DAY_MS, known, extra)
    before = _by_category(con, _ms(last), _ms(last) + days * DAY_MS, known, extra)
    return {"this": this, "last": last, "days": days,
            "trend": [_hidden_change(r) for r in compare(now, before)]}  # fmt: skip


def bar_chart(
    labels: list[str], values: list[int], title: str, horizontal: bool = False
) -> Figure:
    """The chart itself (bar_png draws it): counts on a whole-number axis."""
    fig, ax = plt.subplots(figsize=(6.4, 2.6), dpi=100)
    if horizontal:
        ax.barh(labels or ["none"], values or [0], color="#2f5d8a")
        ax.invert_yaxis()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.bar(labels or ["none"], values or [0], color="#2f5d8a")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def bar_png(labels: list[str], values: list[int], title: str, horizontal: bool = False) -> str:
    """A small bar chart as a data: URI (the console's CSP allows data: images only)."""
    fig = bar_chart(labels, values, title, horizontal)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
