"""The DSL's landing page (issue 17): what needs attention now (new severity 4-5, the oldest
not yet reviewed, referrals waiting for a second person, follow-ups past their date), coverage
(PCs reporting, silent, degraded) and this week against the last; every count links to the
list it stands for. DSL, deputy and head; audited like every page."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from aiohttp import web

from collector.console.sessions import account_of
from collector.console.views_school import agents_view
from collector.incidents import dashboard, staff_alerts
from collector.storage.store import now_ms

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext


def routes(app: web.Application, c: ConsoleContext) -> None:
    async def page(request: web.Request) -> web.StreamResponse:
        me = account_of(request)
        if not me.can("incidents"):
            raise web.HTTPForbidden(text="Your role cannot see this page.")
        await c.record(me, "view_dashboard", "dashboard")
        today, now = dt.date.today(), now_ms()
        silent_ms = c.incidents.rules.incidents.silent_agent_minutes * 60_000
        limit = c.cfg.clock_skew_limit_ms
        staff = await c.read(lambda con: staff_alerts.sees_staff(con, me.role))
        now_view = await c.read(lambda con: dashboard.attention(con, now, today, staff))
        weeks = await c.read(lambda con: dashboard.weeks(con, today, staff))
        pcs = await c.read(lambda con: agents_view(con, silent_ms, limit))
        coverage = {"expected": pcs["expected"], "reporting": pcs["reporting"],
                    "silent": pcs["expected"] - pcs["reporting"],
                    "degraded": pcs["degraded"]}  # fmt: skip
        return c.render(request, "dashboard.html", a=now_view, w=weeks, cov=coverage,
                        today=today, dt=dt)  # fmt: skip

    app.router.add_get("/dashboard", page)
