"""Everything that is not one incident: agents and rooms (technician), exemptions, the audit
log, reports and retention. The technician's pages hold no incident content."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

import duckdb
from aiohttp import web

from collector import policy
from collector.accounts import Account
from collector.console.sessions import SESSION, account_of
from collector.intake import clock, enrolment, vocabulary
from collector.integrity import anchors
from collector.reporting import report_pdfs, reports
from collector.storage import retention
from collector.storage.store import Store, now_ms

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def agents_view(con: duckdb.DuckDBPyConnection, silent_ms: int,
                clock_limit_ms: int = clock.DEFAULT_LIMIT_MS) -> dict[str, Any]:  # fmt: skip
    """Coverage: expected machines (not revoked), those reporting (not silent), and of those
    the degraded ones (a clock beyond the limit: their events' times need correcting)."""
    rows = _dicts(
        con.execute(
            "SELECT a.agent_id, a.hostname, a.os, a.version, a.enrolled_ms, a.last_seen_ms, "
            "a.revoked_ms, a.revoked_reason, h.heartbeat_ms, h.agent_version, h.policy_version, "
            "h.sensors, h.outbox_pending, h.dropped, coalesce(m.room, '') AS room, "
            "coalesce(m.site, '') AS site, coalesce(m.grp, '') AS grp, "
            "coalesce(a.last_seen_ms, a.enrolled_ms) < ? AS silent, a.clock_skew_ms, "
            "a.clock_measured_ms, h.notice_shown_ms, h.notice_version "
            "FROM agents a LEFT JOIN agent_health h USING (agent_id) "
            "LEFT JOIN machines m USING (agent_id) ORDER BY a.hostname, a.agent_id",
            [now_ms() - silent_ms],
        )
    )
    tokens = _dicts(
        con.execute(
            "SELECT token_id, created_ms, expires_ms, max_uses, uses, note FROM tokens "
            "ORDER BY created_ms DESC LIMIT 20"
        )
    )
    for r in rows:
        skewed = clock.skewed(r["clock_skew_ms"], clock_limit_ms)
        r["clock"] = clock.describe(r["clock_skew_ms"]) if skewed else ""
    active = [r for r in rows if not r["revoked_ms"]]
    reporting = [r for r in active if not r["silent"]]
    return {
        "agents": rows,
        "tokens": tokens,
        "expected": len(active),
        "reporting": len(reporting),
        "degraded": sum(1 for r in reporting if r["clock"]),
    }


def routes(app: web.Application, c: ConsoleContext) -> None:
    def need(request: web.Request, what: str) -> Account:
        me = account_of(request)
        if not me.can(what):
            raise web.HTTPForbidden(text="Your role cannot see this page.")
        return me

    async def flash_back(request: web.Request, to: str, text: str) -> web.StreamResponse:
        request[SESSION].flash.append(text)
        raise web.HTTPSeeOther(to)

    # -- technician ------------------------------------------------------------------------
    async def agents(request: web.Request) -> web.StreamResponse:
        need(request, "agents")
        silent = c.incidents.rules.incidents.silent_agent_minutes * 60_000
        view = await c.read(lambda con: agents_view(con, silent, c.cfg.clock_skew_limit_ms))
        return c.render(request, "agents.html", now=now_ms(), token=None, **view)

    async def token(request: web.Request) -> web.StreamResponse:
        me = need(request, "agents")
        form = await request.post()
        uses = str(form.get("uses", "1"))
        hours = str(form.get("hours", "24"))
        if not (
            uses.isdigit()
            and hours.isdigit()
            and 0 < int(uses) <= 500
            and 0 < int(hours) <= 24 * 14
        ):
            return await flash_back(request, "/agents", "Uses: 1-500; hours: 1-336.")

        def make(s: Store) -> dict[str, Any]:
            t = enrolment.new_token(s, int(hours) * 3600, int(uses), str(form.get("note", ""))[:80])
            c.audit.append(s, me.username, "token_created", "agents", f"uses={uses}")
            return t

        made = await c.write(make)
        silent = c.incidents.rules.incidents.silent_agent_minutes * 60_000
        view = await c.read(lambda con: agents_view(con, silent, c.cfg.clock_skew_limit_ms))
        return c.render(request, "agents.html", now=now_ms(), token=made["token"], **view)

    async def revoke(request: web.Request) -> web.StreamResponse:
        me = need(request, "agents")
        agent_id = request.match_info["agent"]
        form = await request.post()
        reason = str(form.get("reason", "")).strip()[:200] or f"revoked by {me.username}"

        def run(s: Store) -> bool:
            done = enrolment.revoke(s, c.data, agent_id, reason)
            c.audit.append(s, me.username, "agent_revoked", f"agent:{agent_id}", reason)
            return done

        done = await asyncio_call(c, run, changes_agents=True)
        return await flash_back(request, "/agents", "Revoked." if done else "Not an active agent.")

    async def place(request: web.Request) -> web.StreamResponse:
        me = need(request, "agents")
        agent_id = request.match_info["agent"]
        form = await request.post()
        room, site, grp = (str(form.get(k, "")).strip()[:60] for k in ("room", "site", "grp"))

        def run(s: Store) -> None:
            with s.transaction() as con:
                con.execute(
                    "INSERT INTO machines VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO "
                    "UPDATE SET room = excluded.room, site = excluded.site, grp = excluded.grp, "
                    "updated_ms = excluded.updated_ms, updated_by = excluded.updated_by",
                    [agent_id, room, site, grp, now_ms(), me.username],
                )
                c.audit.append(
                    s,
                    me.username,
                    "machine_placed",
                    f"agent:{agent_id}",
                    f"room={room} site={site} group={grp}",
                )

        await c.write(run)
        return await flash_back(request, "/agents", "Saved where this machine is.")

    # -- exemptions ------------------------------------------------------------------------
    async def exemptions(request: web.Request) -> web.StreamResponse:
        need(request, "request_exemption")
        rows = await c.read(
            lambda con: _dicts(con.execute("SELECT * FROM exemption_requests ORDER BY id DESC"))
        )
        used = await c.read(
            lambda con: con.execute(
                "SELECT exemption, category, count(*), max(observed_ms) FROM exempted_matches "
                "GROUP BY ALL ORDER BY 3 DESC"
            ).fetchall()
        )
        return c.render(
            request, "exemptions.html", rows=rows, used=used, today=dt.date.today().isoformat()
        )

    async def exemption_request(request: web.Request) -> web.StreamResponse:
        me = need(request, "request_exemption")
        form = await request.post()
        f = {
            k: str(form.get(k, "")).strip()[:500]
            for k in ("grp", "terms", "sites", "start", "end", "reason")
        }
        try:
            start, end = dt.date.fromisoformat(f["start"]), dt.date.fromisoformat(f["end"])
        except ValueError:
            return await flash_back(request, "/exemptions", "Give a start and an end date.")
        if not (f["grp"] and (f["terms"] or f["sites"]) and f["reason"] and end > start):
            return await flash_back(
                request,
                "/exemptions",
                "An exemption needs a group, terms or sites, a reason, and an end after its start.",
            )

        def run(s: Store) -> None:
            with s.transaction() as con:
                row = con.execute(
                    "INSERT INTO exemption_requests (grp, terms, sites, start_date, end_date, "
                    "reason, requested_by, requested_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING id",
                    [
                        f["grp"],
                        f["terms"],
                        f["sites"],
                        start,
                        end,
                        f["reason"],
                        me.username,
                        now_ms(),
                    ],
                ).fetchone()
                assert row is not None
                c.audit.append(s, me.username, "exemption_requested", f"exemption:{row[0]}")

        await c.write(run)
        return await flash_back(request, "/exemptions", "Exemption requested.")

    async def exemption_decide(request: web.Request) -> web.StreamResponse:
        me = need(request, "approve_exemption")
        eid = int(request.match_info["eid"])
        state = "approved" if request.match_info["verb"] == "approve" else "refused"

        def run(s: Store) -> bool:
            with s.transaction() as con:
                row = con.execute(
                    "UPDATE exemption_requests SET state = ?, decided_by = ?, decided_ms = ? "
                    "WHERE id = ? AND state = 'requested' RETURNING id",
                    [state, me.username, now_ms(), eid],
                ).fetchone()
                if row:
                    c.audit.append(s, me.username, f"exemption_{state}", f"exemption:{eid}")
                return row is not None

        done = await c.write(run)
        if done and state == "approved":
            # Into the next signed bundle at once, so agents honour it within minutes.
            approved = await c.write(policy.approved_exemptions)
            published = await asyncio.to_thread(policy.publish, c.data, None, approved)
            await c.record(me, "policy_published", f"policy:{published.version}",
                           f"exemption:{eid} approved")  # fmt: skip
            return await flash_back(
                request, "/exemptions",
                f"Exemption approved; policy version {published.version} sent to agents.",
            )  # fmt: skip
        return await flash_back(
            request, "/exemptions", f"Exemption {state}." if done else "Already decided."
        )

    # -- audit, reports, retention ---------------------------------------------------------
    async def audit_view(request: web.Request) -> web.StreamResponse:
        from collector.integrity import audit

        me = need(request, "audit")
        await c.record(me, "view_audit", "audit")
        rows = await c.read(lambda con: audit.read(con, 300))
        check = await c.read(c.audit.verify)
        return c.render(request, "audit.html", rows=rows, check=check)

    def week_asked(request: web.Request) -> dt.date:
        today = dt.date.today()
        last_week = today - dt.timedelta(days=today.weekday() + 7)
        try:
            start = dt.date.fromisoformat(request.query.get("week", ""))
        except ValueError:
            return last_week
        if not dt.date(2000, 1, 1) <= start <= dt.date(2999, 12, 24):  # a week that can end
            return last_week
        return start

    def pdf_response(body: bytes, name: str) -> web.Response:
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        return web.Response(body=body, content_type="application/pdf", headers=disposition)

    async def weekly_report(request: web.Request, fmt: str) -> tuple[dict[str, Any], str]:
        me = need(request, "weekly_report")
        start = week_asked(request)
        action = "view_report" if fmt == "page" else "export_report"
        await c.record(me, action, "weekly", start.isoformat())
        known = vocabulary.known_categories(c.data)
        rep = await c.read(lambda con: reports.weekly(con, start, known, c.cfg.terms))
        checkpoint = await c.read(lambda con: anchors.make(c.data, con))
        return rep, checkpoint.line()

    async def weekly(request: web.Request) -> web.StreamResponse:
        rep, checkpoint = await weekly_report(request, "page")
        return c.render(request, "weekly.html", r=rep, dt=dt, checkpoint=checkpoint)

    async def weekly_pdf(request: web.Request) -> web.StreamResponse:
        rep, checkpoint = await weekly_report(request, "pdf")
        body = await asyncio.to_thread(report_pdfs.weekly_pdf, rep, checkpoint)
        return pdf_response(body, f"weekly-report-{rep['week_start'].isoformat()}.pdf")

    async def governors_report(request: web.Request, fmt: str) -> dict[str, Any]:
        me = need(request, "governors")
        await c.record(me, "view_report" if fmt == "page" else "export_report", "governors")
        known = vocabulary.known_categories(c.data)
        today = dt.date.today()
        return await c.read(lambda con: reports.governors(con, 12, today, known, c.cfg.terms))

    async def governors(request: web.Request) -> web.StreamResponse:
        return c.render(request, "governors.html", r=await governors_report(request, "page"))

    async def governors_pdf(request: web.Request) -> web.StreamResponse:
        rep = await governors_report(request, "pdf")
        body = await asyncio.to_thread(report_pdfs.governors_pdf, rep)
        return pdf_response(body, f"governors-summary-{dt.date.today().isoformat()}.pdf")

    async def settings(request: web.Request) -> web.StreamResponse:
        need(request, "settings")
        p = await c.read(retention.periods)
        return c.render(request, "settings.html", p=p)

    async def settings_save(request: web.Request) -> web.StreamResponse:
        me = need(request, "settings")
        form = await request.post()
        try:
            ev, inc = int(str(form.get("events_days"))), int(str(form.get("incidents_days")))
            await c.write(lambda s: retention.set_periods(s, c.audit, me.username, ev, inc))
        except ValueError as exc:
            return await flash_back(request, "/settings", str(exc))
        return await flash_back(request, "/settings", "Retention periods saved.")

    async def purge(request: web.Request) -> web.StreamResponse:
        me = need(request, "settings")
        got = await c.write(lambda s: retention.purge(s, c.audit, me.username))
        return await flash_back(
            request,
            "/settings",
            f"Purged {got['events']} events and {got['incidents']} closed incidents.",
        )

    r = app.router
    r.add_get("/agents", agents)
    r.add_post("/agents/token", token)
    r.add_post("/agents/{agent}/revoke", revoke)
    r.add_post("/agents/{agent}/place", place)
    r.add_get("/exemptions", exemptions)
    r.add_post("/exemptions", exemption_request)
    r.add_post("/exemptions/{eid:\\d+}/{verb:approve|refuse}", exemption_decide)
    r.add_get("/audit", audit_view)
    r.add_get("/reports/weekly", weekly)
    r.add_get("/reports/weekly.pdf", weekly_pdf)
    r.add_get("/reports/governors", governors)
    r.add_get("/reports/governors.pdf", governors_pdf)
    r.add_get("/settings", settings)
    r.add_post("/settings", settings_save)
    r.add_post("/settings/purge", purge)


async def asyncio_call(c: ConsoleContext, fn: Any, changes_agents: bool) -> Any:
    """Like Console.write, for calls that enrol or revoke (the writer refreshes its agents)."""
    return await asyncio.wrap_future(c.ingestor.call(fn, changes_agents=changes_agents))
