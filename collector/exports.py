"""A CPOMS-ready record of one incident (PDF, JSON, CSV), and re-verifying its evidence.

CPOMS takes an incident as: the pupil, what happened, categories, date and time, location,
actions taken and by whom. `record()` builds exactly that from a candidate, with each evidence
event's hash and the result of the last chain check, so the export stands on its own.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from collector import evidence
from collector.accounts import Account
from collector.audit import Audit
from collector.incidents.triage import OUTCOMES, STATUSES
from collector.store import Store, now_ms

SCHEMA = "safeguard-monitor/cpoms-incident/v1"


def _iso(ms: int | None) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone().isoformat(timespec="seconds")


def verify_incident(store: Store, audit: Audit, who: Account, incident_id: int) -> str:
    """Re-check every evidence event's chain and batch signature from storage (on the writer
    thread, so the check sees exactly what is stored); record and return the result."""
    rows = store.con.execute(
        "SELECT agent_id, seq FROM incident_signals WHERE incident_id = ? AND seq IS NOT NULL",
        [incident_id],
    ).fetchall()
    by_agent: dict[str, list[int]] = {}
    for agent_id, seq in rows:
        by_agent.setdefault(agent_id, []).append(seq)
    results: dict[str, int] = {}
    for agent_id, seqs in by_agent.items():
        status = evidence.verify_range(store, agent_id, min(seqs), max(seqs))
        for seq in seqs:
            verdict = status.get(seq, "event no longer stored")
            results[verdict] = results.get(verdict, 0) + 1
    total = sum(results.values())
    if total == 0:
        text = "No stored events to verify (this candidate is not built from events)."
    elif set(results) == {"verified"}:
        text = (
            f"Evidence verified: all {total} events hash into their agent's chain and "
            "every batch signature checks against the enrolled key."
        )
    else:
        parts = ", ".join(f"{n} {v}" for v, n in sorted(results.items()))
        text = f"Evidence check FAILED for some events: {parts}."
    with store.transaction():
        store.con.execute(
            "INSERT INTO incident_actions (incident_id, kind, text, by_user, at_ms) "
            "VALUES (?, 'verification', ?, ?, ?)",
            [incident_id, text, who.username, now_ms()],
        )
        audit.append(
            store,
            who.username,
            "verify_evidence",
            f"incident:{incident_id}",
            "ok" if set(results) <= {"verified"} else "failed",
        )
    return text


def _event_line(s: dict[str, Any]) -> dict[str, Any]:
    ev = s["event"]
    payload: dict[str, Any] = next(
        (ev[k] for k in ("keyword", "url", "usb", "test_alert") if k in ev), {}
    )
    return {
        "time": _iso(s["observed_ms"]),
        "source": s["source"],
        "category": s["category"],
        "severity": s["severity"],
        "terms": payload.get("terms", []),
        "context": payload.get("context", ""),
        "application": payload.get("application", ""),
        "window_title": payload.get("window_title", ""),
        "url": payload.get("url", ""),
        "device": " ".join(
            str(payload.get(k, "")) for k in ("vendor_id", "product_id", "product") if k in payload
        ),
        "agent_id": s["agent_id"],
        "seq": s["seq"],
        "hash": s["hash"],
    }


def record(inc: dict[str, Any], exported_by: Account) -> dict[str, Any]:
    verifications = [a for a in inc["actions"] if a["kind"] == "verification"]
    return {
        "schema": SCHEMA,
        "incident_id": inc["id"],
        "student": inc["account"],
        "group": inc["grp"],
        "date_time": _iso(inc["first_ms"]),
        "last_event": _iso(inc["last_ms"]),
        "categories": [c for c in inc["categories"].split(",") if c],
        "severity": inc["severity"],
        "description": inc["summary"],
        "escalation": inc["escalation"],
        "location": {
            "site": inc["site"],
            "room": inc["room"],
            "machine": inc["hostname"],
            "agent_id": inc["agent_id"],
        },
        "status": STATUSES.get(inc["status"], inc["status"]),
        "outcome": OUTCOMES.get(inc["outcome"], ""),
        "outcome_note": inc["outcome_note"],
        "closed_by": inc["closed_by"],
        "evidence": [_event_line(s) for s in inc["evidence"]],
        "exempted_matches": inc["suppressed"],
        "actions": [
            {
                "at": _iso(a["at_ms"]),
                "by": a["by_user"],
                "kind": a["kind"],
                "text": a["text"],
                "due": a["due_date"].isoformat() if a["due_date"] else "",
                "done": _iso(a["done_ms"]),
            }
            for a in inc["actions"]
        ],
        "referrals": [
            {
                "outcome": OUTCOMES.get(r["outcome"], r["outcome"]),
                "state": r["state"],
                "requested_by": r["requested_by"],
                "confirmed_by": r["confirmed_by"] or "",
                "requested_at": _iso(r["requested_ms"]),
                "confirmed_at": _iso(r["confirmed_ms"]),
            }
            for r in inc["referrals"]
        ],
        "chain_proof": verifications[-1]["text"] if verifications else "not yet verified",
        "exported_by": exported_by.display_name,
        "exported_at": _iso(now_ms()),
    }


def render(inc: dict[str, Any], fmt: str, who: Account) -> tuple[bytes, str]:
    rec = record(inc, who)
    if fmt == "json":
        return json.dumps(rec, indent=2).encode(), "application/json"
    if fmt == "csv":
        return _csv(rec).encode(), "text/csv"
    return pdf(rec), "application/pdf"


def _csv(rec: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["field", "value"])
    for key, value in rec.items():
        if isinstance(value, list | dict):
            value = json.dumps(value)
        w.writerow([key, value])
    return out.getvalue()


def pdf(rec: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        title=f"Safeguarding incident {rec['incident_id']}",
    )
    st = getSampleStyleSheet()
    small = st["BodyText"].clone("small", fontSize=8, leading=10)

    def p(text: Any) -> Paragraph:
        return Paragraph(_esc(str(text)), small)

    loc = rec["location"]
    fields = [
        ("Pupil (account)", rec["student"] or "(no one logged in)"),
        ("Group", rec["group"]),
        ("Date and time", rec["date_time"]),
        ("Last event", rec["last_event"]),
        ("Categories", ", ".join(rec["categories"])),
        ("Severity (1-5)", rec["severity"]),
        ("What happened", rec["description"]),
        ("Why escalated", rec["escalation"] or "-"),
        ("Location", ", ".join(x for x in (loc["site"], loc["room"], loc["machine"]) if x)),
        ("Status", rec["status"]),
        ("Outcome", rec["outcome"] or "-"),
        ("Outcome note", rec["outcome_note"] or "-"),
        ("Evidence check", rec["chain_proof"]),
        ("Exempted matches (suppressed)", rec["exempted_matches"]),
    ]
    story: list[Any] = [
        Paragraph(f"Safeguarding incident record #{rec['incident_id']}", st["Title"]),
        Paragraph(
            "CONFIDENTIAL - special category data about a child. For the school's "
            "safeguarding record (CPOMS).",
            small,
        ),
        Spacer(1, 4 * mm),
        _table([[p(k), p(v)] for k, v in fields], [45 * mm, 125 * mm]),
        Spacer(1, 4 * mm),
        Paragraph("Evidence", st["Heading2"]),
    ]
    ev_rows = [[p("Time"), p("Type"), p("Detail"), p("Hash")]]
    for e in rec["evidence"]:
        detail = "; ".join(
            x
            for x in (
                ", ".join(e["terms"]),
                e["context"] and f'"{e["context"]}"',
                e["url"],
                e["device"],
                e["application"],
                e["window_title"],
            )
            if x
        )
        ev_rows.append(
            [p(e["time"]), p(f"{e['source']} / {e['category']}"), p(detail), p(e["hash"][:16])]
        )
    story.append(_table(ev_rows, [34 * mm, 30 * mm, 78 * mm, 28 * mm], header=True))
    story += [Spacer(1, 4 * mm), Paragraph("Actions and follow-up", st["Heading2"])]
    act_rows = [[p("When"), p("By"), p("What"), p("Due / done")]]
    for a in rec["actions"]:
        act_rows.append([p(a["at"]), p(a["by"]), p(a["text"]), p(f"{a['due']} {a['done']}")])
    for r in rec["referrals"]:
        act_rows.append(
            [
                p(r["requested_at"]),
                p(r["requested_by"]),
                p(f"{r['outcome']} ({r['state']}; confirmed by {r['confirmed_by'] or '-'})"),
                p(r["confirmed_at"]),
            ]
        )
    story.append(_table(act_rows, [34 * mm, 28 * mm, 80 * mm, 28 * mm], header=True))
    story += [
        Spacer(1, 6 * mm),
        Paragraph(f"Exported by {_esc(rec['exported_by'])} at {rec['exported_at']}.", small),
    ]
    doc.build(story)
    return buf.getvalue()


def _table(rows: list[list[Any]], widths: list[float], header: bool = False) -> Table:
    t = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style: list[Any] = [
        ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")))
    else:
        style.append(("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f2f2f2")))
    t.setStyle(TableStyle(style))
    return t


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
