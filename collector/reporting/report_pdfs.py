"""The weekly report and the governors' summary as PDFs to send (reportlab, as the incident
record in exports.py): the same figures as the pages, from the same dicts (reports.py), so a
PDF can say no more than its page. The governors' PDF carries no names because its data has
none."""

from __future__ import annotations

import base64
import io
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from collector.incidents.triage import OUTCOMES

_ST = getSampleStyleSheet()
_SMALL = _ST["BodyText"].clone("report-small", fontSize=9, leading=11)


def _p(text: object) -> Paragraph:
    return Paragraph(str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
                     _SMALL)  # fmt: skip


def _table(head: list[str], rows: list[list[object]], widths: list[float]) -> Table:
    t = Table([[_p(h) for h in head]] + [[_p(c) for c in r] for r in rows],
              colWidths=widths, repeatRows=1)  # fmt: skip
    t.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
    ]))  # fmt: skip
    return t


def _none(rows: list[list[object]], width: int) -> list[list[object]]:
    return rows or [["none", *[""] * (width - 1)]]


def _chart(uri: str) -> Image:
    png = base64.b64decode(uri.split(",", 1)[1])
    return Image(io.BytesIO(png), width=160 * mm, height=65 * mm)


def _build(title: str, story: list[Any]) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                            title=title)  # fmt: skip
    doc.build([Paragraph(title, _ST["Title"]), *story])
    return buf.getvalue()


def _trend(rows: list[dict[str, Any]], now: str, before: str) -> Table:
    body = [[str(r["key"]).replace("_", " "), r["now"], r["before"], r["change"]] for r in rows]
    return _table(["Category", now, before, "Change"], _none(body, 4),
                  [70 * mm, 32 * mm, 32 * mm, 26 * mm])  # fmt: skip


def _term(term: dict[str, Any] | None) -> list[Any]:
    if term is None:
        return []
    days, this, last = term["days"], term["this"], term["last"]
    return [
        Paragraph("This term against last", _ST["Heading2"]),
        _p(f"The first {days} days of this term (from {this.strftime('%d %B %Y')}) against "
           f"the first {days} days of the term before (from {last.strftime('%d %B %Y')})."),
        _trend(term["trend"], "This term", "Last term"),
    ]  # fmt: skip


def weekly_pdf(r: dict[str, Any], checkpoint: str) -> bytes:
    week = r["week_start"].strftime("%d %B %Y")
    opened = r["open"]
    glance = [
        ["New candidates", f"{r['total']} (last week {r['previous_total']})"],
        ["Open now", f"{opened.get('new', 0)} new, {opened.get('in_review', 0)} in review"],
        ["Referrals awaiting a second person", r["pending_referrals"]],
        ["Overdue follow-up actions", r["overdue_actions"]],
    ]
    story: list[Any] = [
        _p(f"Week of {week}. Counts only: no pupil is named in this report."),
        Spacer(1, 4 * mm),
        _table(["At a glance", ""], glance, [90 * mm, 70 * mm]),
        Spacer(1, 4 * mm),
        Paragraph("By category, against last week", _ST["Heading2"]),
        _trend(r["trend"], "This week", "Last week"),
        Paragraph("By severity", _ST["Heading2"]),
        _table(["Severity", "Candidates"], _none([[s, n] for s, n in r["by_severity"]], 2),
               [90 * mm, 70 * mm]),
        Paragraph("Closed this week", _ST["Heading2"]),
        _table(["Outcome", "Incidents"],
               _none([[OUTCOMES.get(o, o), n] for o, n in r["outcomes"]], 2), [90 * mm, 70 * mm]),
        Paragraph("Exemptions used", _ST["Heading2"]),
        _table(["Exemption", "Matches suppressed"], _none([[e, n] for e, n in r["exempted"]], 2),
               [90 * mm, 70 * mm]),
        Spacer(1, 4 * mm),
        _chart(r["charts"]["days"]),
        _chart(r["charts"]["categories"]),
        Spacer(1, 4 * mm),
        _p(f"{checkpoint}. Keep this line with the report: safeguard-collector verify --head "
           "checks the records against it later."),
    ]  # fmt: skip
    return _build(f"Weekly safeguarding report: week of {week}", story)


def governors_pdf(r: dict[str, Any]) -> bytes:
    since = r["start"].strftime("%d %B %Y")
    before = r["previous_start"].strftime("%d %B %Y")
    story: list[Any] = [
        _p(f"Counts and trends for the last {r['weeks']} weeks (from {since}), against the "
           f"{r['weeks']} weeks before (from {before}). No pupil, staff member, machine or "
           f"search appears here by design; counts below 3 are shown as \"fewer than 3\"."),
        Spacer(1, 4 * mm),
        _chart(r["chart"]),
        Paragraph("By category, against the previous period", _ST["Heading2"]),
        _trend(r["trend"], "This period", "Previous period"),
        *_term(r.get("term")),
        Paragraph("By severity", _ST["Heading2"]),
        _table(["Severity", "Candidates"], _none([[s, n] for s, n in r["by_severity"]], 2),
               [90 * mm, 70 * mm]),
        Paragraph("Outcomes", _ST["Heading2"]),
        _table(["Outcome", "Incidents"],
               _none([[OUTCOMES.get(o, o), n] for o, n in r["outcomes"]], 2), [90 * mm, 70 * mm]),
        Spacer(1, 4 * mm),
        _p(f"Monitoring coverage: {r['reporting']} of {r['machines']} machines reported in the "
           "last week."),
    ]  # fmt: skip
    return _build("Governors' safeguarding summary", story)
