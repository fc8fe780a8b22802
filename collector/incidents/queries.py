"""What the console reads about candidates. Every function takes a read connection
(`Store.reader()`, used on a worker thread) and returns plain dicts for the templates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb
from google.protobuf import json_format

from collector.incidents.staff_alerts import ABOUT_STAFF
from protos import events_pb2
from protos.skew import describe as describe_skew

PAGE = 50


@dataclass(frozen=True)
class Filters:
    severity: int | None = None  # at least this severity
    category: str = ""
    status: str = ""  # "", "open" (not closed), new, in_review, closed
    pupil: str = ""  # account, part of it
    machine: str = ""  # host name or room, part of it
    since: dt.date | None = None
    until: dt.date | None = None
    page: int = 0
    q: str = ""  # free text: in the summary, categories, events' terms/context/URL, notes
    assigned_to: str = ""  # a username: only the candidates given to them ("mine")
    staff: bool = True  # include candidates about staff (only for who sees them: staff_alerts)


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


_WHERE = """
    (? IS NULL OR i.severity >= ?)
    AND (? = '' OR list_contains(string_split(i.categories, ','), ?))
    AND (? = '' OR (? = 'open' AND i.status <> 'closed') OR i.status = ?)
    AND (? = '' OR i.account ILIKE '%' || ? || '%')
    AND (? = '' OR a.hostname ILIKE '%' || ? || '%' OR m.room ILIKE '%' || ? || '%')
    AND (? IS NULL OR i.last_ms >= ?)
    AND (? IS NULL OR i.first_ms < ?)
    AND (? = '' OR i.assigned_to = ?)
    AND (? OR NOT """ + ABOUT_STAFF + """)
"""
# Added only when there are words to find: DuckDB would otherwise still join every event to
# read it, which costs each plain list load some 200 ms at 10,000 candidates. Heartbeats (most
# events, never evidence) are left out before the join.
_SEARCH = """
    AND (i.summary ILIKE ? ESCAPE '!' OR i.categories ILIKE ? ESCAPE '!'
         OR i.id IN (SELECT x.incident_id FROM incident_actions x WHERE x.text ILIKE ? ESCAPE '!')
         OR i.id IN (SELECT g.incident_id FROM incident_signals g JOIN events e
                     ON e.agent_id = g.agent_id AND e.seq = g.seq
                     WHERE e.kind <> 'heartbeat' AND CAST(e.raw AS VARCHAR) ILIKE ? ESCAPE '!'))
"""


def _where(f: Filters) -> str:
    return _WHERE + _SEARCH if f.q else _WHERE


# The list's order: open before closed, then severity, then newest.
_ORDER = "i.status = 'closed', i.severity DESC, i.last_ms DESC, i.id DESC"


# The same, with the one incident the filters no longer take ranked as if still open.
_AS_IF_OPEN = _ORDER.replace("i.status = 'closed'", "(i.status = 'closed' AND i.matched)")


def _args(f: Filters) -> list[Any]:
    def ms(d: dt.date | None, days: int = 0) -> int | None:
        if d is None:
            return None
        start = dt.datetime.combine(d + dt.timedelta(days=days), dt.time(), dt.UTC)
        return int(start.timestamp() * 1000)

    since, until = ms(f.since), ms(f.until, 1)
    return [
        f.severity,
        f.severity,
        f.category,
        f.category,
        f.status,
        f.status,
        f.status,
        f.pupil,
        f.pupil,
        f.machine,
        f.machine,
        f.machine,
        since,
        since,
        until,
        until,
        f.assigned_to,
        f.assigned_to,
        f.staff,
        *([_like(f.q), _like(f.q), _like(f.q), _like_in_event(f.q)] if f.q else []),
    ]


def list_incidents(con: duckdb.DuckDBPyConnection, f: Filters) -> tuple[list[dict[str, Any]], int]:
    """One page of candidates, most urgent first (open before closed, then severity, then
    newest), and how many match in all."""
    base = (
        "FROM incidents i LEFT JOIN agents a ON a.agent_id = i.agent_id "
        f"LEFT JOIN machines m ON m.agent_id = i.agent_id WHERE {_where(f)}"
    )
    total = con.execute(f"SELECT count(*) {base}", _args(f)).fetchone()
    cur = con.execute(
        "SELECT i.id, i.kind, i.category, i.categories, i.severity, i.status, i.outcome, "  # noqa: S608 -- fixed fragments
        "i.account, i.agent_id, coalesce(a.hostname, '') AS hostname, "
        "coalesce(m.room, '') AS room, coalesce(m.site, '') AS site, i.first_ms, i.last_ms, "
        "i.event_count, i.summary, i.escalation <> '' AS escalated, "
        "EXISTS (SELECT 1 FROM referrals r WHERE r.incident_id = i.id AND r.state = 'pending') "
        "AS referral_pending, coalesce(i.assigned_to, '') AS assigned_to, "
        "coalesce((SELECT display_name FROM accounts u WHERE u.username = i.assigned_to), "
        "i.assigned_to, '') AS assigned_name "
        f"{base} ORDER BY {_ORDER} "
        "LIMIT ? OFFSET ?",
        [*_args(f), PAGE, f.page * PAGE],
    )
    return _dicts(cur), int(total[0]) if total else 0


def neighbours(
    con: duckdb.DuckDBPyConnection, f: Filters, incident_id: int
) -> tuple[int | None, int | None]:
    """The candidates before and after this one in the list these filters give, in the list's
    order. The incident itself counts even when the filters no longer take it, placed as if
    still open (one just closed under "open"), so "next" goes on from where the DSL was."""
    row = con.execute(
        "SELECT prev, nxt FROM (SELECT i.id, lag(i.id) OVER w AS prev, lead(i.id) OVER w AS nxt "  # noqa: S608 -- fixed fragments
        "FROM (SELECT i.id, i.status, i.severity, i.last_ms, "
        f"({_where(f)}) AS matched FROM incidents i LEFT JOIN agents a ON a.agent_id = i.agent_id "
        "LEFT JOIN machines m ON m.agent_id = i.agent_id) i WHERE i.matched OR i.id = ? "
        f"WINDOW w AS (ORDER BY {_AS_IF_OPEN})) "
        "WHERE id = ?",
        [*_args(f), incident_id, incident_id],
    ).fetchone()
    if row is None:
        return None, None
    prev, nxt = row
    return (None if prev is None else int(prev)), (None if nxt is None else int(nxt))


def incident(con: duckdb.DuckDBPyConnection, incident_id: int) -> dict[str, Any] | None:
    cur = con.execute(
        "SELECT i.*, coalesce(a.hostname, '') AS hostname, coalesce(m.room, '') AS room, "
        "coalesce(m.site, '') AS site, coalesce(m.grp, '') AS grp, "
        "(SELECT count(*) FROM exempted_matches x WHERE x.incident_id = i.id) AS suppressed, "
        "coalesce((SELECT display_name FROM accounts u WHERE u.username = i.assigned_to), "
        "i.assigned_to, '') AS assigned_name "
        "FROM incidents i LEFT JOIN agents a ON a.agent_id = i.agent_id "
        "LEFT JOIN machines m ON m.agent_id = i.agent_id WHERE i.id = ?",
        [incident_id],
    )
    rows = _dicts(cur)
    if not rows:
        return None
    inc = rows[0]
    inc["evidence"] = evidence(con, incident_id)
    inc["actions"] = _dicts(
        con.execute(
            "SELECT id, kind, text, due_date, done_ms, by_user, at_ms FROM incident_actions "
            "WHERE incident_id = ? ORDER BY at_ms, id",
            [incident_id],
        )
    )
    inc["referrals"] = _dicts(
        con.execute("SELECT * FROM referrals WHERE incident_id = ? ORDER BY id", [incident_id])
    )
    inc["related"] = related(con, inc)
    inc["exempted"] = _dicts(
        con.execute(
            "SELECT exemption, category, count(*) AS n FROM exempted_matches WHERE incident_id = ? "
            "GROUP BY ALL ORDER BY n DESC",
            [incident_id],
        )
    )
    return inc


RELATED_MS = 7 * 86_400_000  # candidates of the same pupil this close in time are related


def related(con: duckdb.DuckDBPyConnection, inc: dict[str, Any]) -> list[dict[str, Any]]:
    """Other candidates of the same pupil within a week either side: linked, not merged (one
    concern per candidate), newest first."""
    if not inc.get("account"):
        return []
    return _dicts(con.execute(
        "SELECT id, coalesce(concern, '') AS concern, category, severity, status, first_ms, "
        "last_ms FROM incidents WHERE account = ? AND id <> ? AND kind = 'detection' "
        "AND first_ms <= ? AND last_ms >= ? ORDER BY last_ms DESC LIMIT 20",
        [inc["account"], inc["id"], inc["last_ms"] + RELATED_MS, inc["first_ms"] - RELATED_MS],
    ))  # fmt: skip


def evidence(con: duckdb.DuckDBPyConnection, incident_id: int) -> list[dict[str, Any]]:
    """The incident's signals with their stored events decoded, oldest first."""
    sigs = _dicts(
        con.execute(
            "SELECT agent_id, seq, observed_ms, source, category, severity FROM incident_signals "
            "WHERE incident_id = ? ORDER BY observed_ms, seq",
            [incident_id],
        )
    )
    wanted = [(s["agent_id"], s["seq"]) for s in sigs if s["seq"] is not None]
    stored: dict[tuple[str, int], tuple[bytes, bytes, int, int | None]] = {}
    for agent_id in {a for a, _ in wanted}:
        seqs = [q for a, q in wanted if a == agent_id]
        for seq, raw, digest, received, skew in con.execute(
            "SELECT seq, raw, hash, received_ms, clock_skew_ms FROM events WHERE agent_id = ? "
            "AND seq BETWEEN ? AND ? AND list_contains(?, seq)",
            [agent_id, min(seqs), max(seqs), seqs],
        ).fetchall():
            stored[(agent_id, seq)] = (raw, digest, received, skew)
    for s in sigs:
        got = stored.get((s["agent_id"], s["seq"]))
        s["event"], s["hash"], s["received_ms"] = {}, "", None
        s["screenshot"], s["screenshot_held"] = "", False
        # A skewed PC's time, corrected by the skew measured when it shipped (see
        # collector/intake/clock.py); None when its clock was within the limit.
        s["clock_skew_ms"] = s["corrected_ms"] = None
        if got:
            ev = events_pb2.Event()
            ev.ParseFromString(got[0])
            s["event"] = json_format.MessageToDict(ev, preserving_proto_field_name=True)
            s["screenshot"] = ev.screenshot_sha256.hex()  # what the PC says it sealed, if any
            s["hash"], s["received_ms"] = got[1].hex(), got[2]
            if got[3] is not None:
                s["clock_skew_ms"], s["corrected_ms"] = got[3], s["observed_ms"] - got[3]
                s["clock"] = describe_skew(got[3])
    named = [(s["agent_id"], s["screenshot"]) for s in sigs if s["screenshot"]]
    if named:
        held = set(con.execute(
            "SELECT agent_id, sha256 FROM screenshots WHERE list_contains(?, sha256)",
            [[sha for _, sha in named]]).fetchall())  # fmt: skip
        for s in sigs:
            s["screenshot_held"] = (s["agent_id"], s["screenshot"]) in held
    return sigs


def categories(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("SELECT DISTINCT category FROM incidents ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def _like(text: str) -> str:
    """A LIKE pattern (escape character !) for the text anywhere in a column."""
    return "%" + "".join("!" + ch if ch in "!%_" else ch for ch in text) + "%"


# Bytes DuckDB writes as \xHH when it shows a BLOB as text (besides those outside ASCII).
_SHOWN_ESCAPED = frozenset(b"\"'\\")


def _like_in_event(text: str) -> str:
    """The same pattern for text inside a stored event. An event is kept as the signed protobuf
    bytes the PC sent (the evidence); DuckDB shows them as text with each byte outside
    printable ASCII, and " ' and backslash, written \\xHH. The pattern is spelled the same way,
    so a term, context, URL or window title matches wherever its bytes are in the event.
    Letters outside ASCII then match only in the case typed."""
    shown = "".join(
        chr(b) if 0x20 <= b < 0x7F and b not in _SHOWN_ESCAPED else f"\\x{b:02X}"
        for b in text.encode("utf-8")
    )
    return _like(shown)
