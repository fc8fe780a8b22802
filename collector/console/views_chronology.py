"""A chronology per pupil and per machine (issue 17): every candidate, event and action in
time order, across machines and days; printable, and exported as a CPOMS-style CSV. The
incident list and each incident link the pupil's name and the machine here. DSL, deputy and
head only; every view and export is audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from aiohttp import web

from collector.console.sessions import account_of
from collector.incidents import chronology, staff_alerts
from collector.intake import vocabulary
from collector.reporting.exports import spreadsheet_safe
from collector.roster import book

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext

ACCOUNT = r"{account:[^/]{1,128}}"
AGENT = r"{agent_id:ag-[0-9a-f]{1,40}}"


def routes(app: web.Application, c: ConsoleContext) -> None:
    async def show(request: web.Request, who: str, value: str) -> web.StreamResponse:
        me = account_of(request)
        if not me.can("incidents"):
            raise web.HTTPForbidden(text="Your role cannot see incidents.")
        known = vocabulary.known_categories(c.data)

        def shown(category: str) -> str:
            return vocabulary.shown(category, known)

        staff = await c.read(lambda con: staff_alerts.sees_staff(con, me.role))
        if not staff and who == "pupil" and await c.read(
            lambda con: staff_alerts.account_is_staff(con, value)
        ):  # a member of staff's chronology is the head's (the LADO route)
            await c.record(me, "refused", f"{who}:{value}", "kind=staff_alert")
            raise web.HTTPNotFound(text="No such pupil.")
        fetch = chronology.of_pupil if who == "pupil" else chronology.of_machine
        rows = await c.read(lambda con: fetch(con, value, shown, staff))
        export = request.path.endswith(".csv")
        await c.record(me, "export_chronology" if export else "view_chronology",
                       f"{who}:{value}")  # fmt: skip
        if export:  # a pupil's: named as the roster names them, the account beside
            label = value
            if who == "pupil":
                label = await c.read(lambda con: book.shown_one(con, value))
            return web.Response(
                text=_csv(rows, who, label), content_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="chronology-{who}.csv"'},
            )  # fmt: skip
        machine = next((r["machine"] for r in rows), value) if who == "machine" else ""
        return c.render(request, "chronology.html", rows=rows, who=who, value=value,
                        machine=machine, limit=chronology.LIMIT)  # fmt: skip

    async def pupil(request: web.Request) -> web.StreamResponse:
        return await show(request, "pupil", request.match_info["account"])

    async def machine(request: web.Request) -> web.StreamResponse:
        return await show(request, "machine", request.match_info["agent_id"])

    app.router.add_get(f"/pupils/{ACCOUNT}/chronology", pupil)
    app.router.add_get(f"/pupils/{ACCOUNT}/chronology.csv", pupil)
    app.router.add_get(f"/machines/{AGENT}/chronology", machine)
    app.router.add_get(f"/machines/{AGENT}/chronology.csv", machine)


def _csv(rows: list[dict[str, Any]], who: str, value: str) -> str:
    """Date, time, what, detail, machine, recorded by, incident: one line per entry, as a
    chronology is kept in CPOMS; every cell neutralised for spreadsheets."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([f"Chronology of {who} {spreadsheet_safe(value)}"])
    w.writerow(["date", "time", "entry", "detail", "machine", "recorded by", "incident"])
    for r in rows:
        when = _when(r["at_ms"])
        by = r["by_user"] or ("engine" if r["what"] != "action" else "")
        cells = (when[:10], when[11:16], r["what"], r["detail"], r["machine"], by,
                 r["incident_id"])  # fmt: skip
        w.writerow([spreadsheet_safe(str(x)) for x in cells])
    return out.getvalue()


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
