"""Triage: the list of candidates, one incident with its evidence, and what staff do to it.

Each view of an incident, and each action, is written to the audit log before the answer.
"""

from __future__ import annotations

import datetime as dt
import functools
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from collector import accounts
from collector.accounts import Account
from collector.console import views_screenshots
from collector.console.sessions import SESSION, account_of
from collector.incidents import queries, saved_filters, staff_alerts, triage
from collector.incidents.triage import TriageError
from collector.intake import vocabulary
from collector.integrity import anchors, records
from collector.integrity.audit import Audit
from collector.reporting import export_screenshots, exports
from collector.storage.store import Store

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


MAX_BULK = 200  # more than a page of the list (50); a longer list is not a person's ticks
MAX_PAGE = 100_000  # far past any real list; a bigger number is someone's experiment


def _number(text: str) -> int | None:
    """An ASCII whole number of sane size, or None (str.isdigit also takes "²" and "٣")."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def filters(q: Any, me: str = "", staff: bool = True) -> queries.Filters:
    """The list's filters from a query string; `me`: whose candidates "mine" means; `staff`:
    whether candidates about staff are in it (staff_alerts.sees_staff)."""
    sev = _number(q.get("severity", ""))
    page = _number(q.get("page", "0"))
    return queries.Filters(
        severity=sev if sev is not None and 1 <= sev <= 5 else None,
        category=q.get("category", "")[:40],
        status=q.get("status", "open")
        if q.get("status", "open") in ("", "open", *triage.STATUSES)
        else "open",
        pupil=q.get("pupil", "")[:64],
        machine=q.get("machine", "")[:64],
        since=_date(q.get("since", "")),
        until=_date(q.get("until", "")),
        page=min(page or 0, MAX_PAGE),
        q=" ".join(str(q.get("q", "")).split())[:100],
        assigned_to=me if q.get("mine") == "1" else "",
        staff=staff,
    )


def page_link(f: queries.Filters, page: int) -> str:
    """The list's query string for another page of the same filters, encoded."""
    params = {
        "status": f.status, "severity": f.severity or "", "category": f.category,
        "pupil": f.pupil, "machine": f.machine, "since": f.since or "", "until": f.until or "",
        "q": f.q, "mine": "1" if f.assigned_to else "", "page": page,
    }  # fmt: skip
    return "?" + urllib.parse.urlencode({k: str(v) for k, v in params.items()})


def filter_query(f: queries.Filters) -> str:
    """The filters (not the page) as a query string an incident's links and forms carry, so
    next/previous and the return after an action stay within the same list; "" for none."""
    params = {
        "status": f.status, "severity": f.severity or "", "category": f.category,
        "pupil": f.pupil, "machine": f.machine, "since": f.since or "", "until": f.until or "",
        "q": f.q, "mine": "1" if f.assigned_to else "",
    }  # fmt: skip
    kept = {k: str(v) for k, v in params.items() if v != "" or k == "status"}
    if kept == {"status": "open"}:
        return ""  # the list's default
    return "?" + urllib.parse.urlencode(kept)


def routes(app: web.Application, c: ConsoleContext) -> None:
    def staff(request: web.Request, what: str = "incidents") -> Account:
        me = account_of(request)
        if not me.can(what):
            raise web.HTTPForbidden(text="Your role cannot see incidents.")
        return me

    def incident_id(request: web.Request) -> int:
        number = _number(request.match_info["id"])
        if number is None:
            raise web.HTTPNotFound()
        return number

    async def sees_staff(me: Account) -> bool:
        return await c.read(lambda con: staff_alerts.sees_staff(con, me.role))

    async def withheld(me: Account, iid: int | None) -> bool:
        """An alert about staff that this account does not see (the head's: the LADO route);
        each attempt at one is audited."""
        if iid is None or not await c.read(lambda con: staff_alerts.hidden_from(con, me.role, iid)):
            return False
        await c.record(me, "refused", f"incident:{iid}", "kind=staff_alert")
        return True

    async def visible(me: Account, iid: int | None) -> None:
        """404, as for an incident that does not exist, when it is withheld from this account."""
        if await withheld(me, iid):
            raise web.HTTPNotFound(text="No such incident.")

    async def listing(request: web.Request) -> web.StreamResponse:
        me = staff(request)
        f = filters(request.query, me.username, await sees_staff(me))
        rows, total = await c.read(lambda con: queries.list_incidents(con, f))
        known = vocabulary.known_categories(c.data)
        # Only names a policy (or the collector) gives; any other is shown as "unknown".
        cats = sorted({vocabulary.shown(x, known) for x in await c.read(queries.categories)})
        for row in rows:
            row["category"] = vocabulary.shown(row["category"], known)
        saved = await c.read(lambda con: saved_filters.listing(con, me.username))
        await c.record(me, "view_list", "incidents", request.query_string[:200])
        return c.render(
            request,
            "incidents.html",
            rows=rows,
            total=total,
            f=f,
            categories=cats,
            page_size=queries.PAGE,
            page_link=page_link,
            keep=filter_query(f),
            bulk=triage.BULK,
            saved=saved,
        )

    async def filter_save(request: web.Request) -> web.StreamResponse:
        """Keep the list's current filters (the query string the form was posted with, as the
        list understood it) under a name, for this account."""
        me = staff(request)
        form = await request.post()
        keep = filter_query(filters(request.query, me.username))
        try:
            name = await c.write(lambda s: saved_filters.save(
                s, c.audit, me, str(form.get("name", "")), keep.removeprefix("?")))  # fmt: skip
        except saved_filters.SavedFilterError as exc:
            request[SESSION].flash.append(f"Not saved: {exc}")
        else:
            request[SESSION].flash.append(f"Saved these filters as \u201c{name}\u201d.")
        raise web.HTTPSeeOther(f"/incidents{keep}")

    async def filter_delete(request: web.Request) -> web.StreamResponse:
        me = staff(request)
        form = await request.post()
        name = str(form.get("name", ""))[: saved_filters.MAX_NAME]
        if await c.write(lambda s: saved_filters.delete(s, c.audit, me, name)):
            request[SESSION].flash.append(f"Deleted the saved filter \u201c{name}\u201d.")
        else:
            request[SESSION].flash.append("You have no saved filter of that name.")
        raise web.HTTPSeeOther(f"/incidents{filter_query(filters(request.query, me.username))}")

    async def show(request: web.Request) -> web.StreamResponse:
        me = staff(request)
        iid = incident_id(request)
        await visible(me, iid)
        await c.record(me, "view", f"incident:{iid}")
        inc = await c.read(lambda con: queries.incident(con, iid))
        if inc is None:
            raise web.HTTPNotFound(text="No such incident.")
        _labels(inc, vocabulary.known_categories(c.data))
        # The record is checked at every view: what the page shows must be what was recorded.
        record = await c.read(lambda con: records.check(con, c.audit.key, iid))
        f = filters(request.query, me.username, await sees_staff(me))
        team = await c.read(lambda con: _team(con, about=iid))
        prev, nxt = await c.read(lambda con: queries.neighbours(con, f, iid))
        return c.render(request, "incident.html", inc=inc, today=dt.date.today().isoformat(),
                        record_ok=record.ok, record=exports.record_summary(record),
                        prev=prev, next=nxt, keep=filter_query(f), team=team)  # fmt: skip

    async def act(
        request: web.Request, fn: Callable[[Store, Account, Any], Any], what: str = "triage",
        target: int | None = None,
    ) -> web.StreamResponse:
        """`target`: the incident the action really touches when it is named by another id (a
        follow-up's or a referral's), so a withheld incident cannot be reached through one."""
        me = staff(request, what)
        iid = incident_id(request)
        await visible(me, iid)
        if target != iid:
            await visible(me, target)
        form = await request.post()
        try:
            done = await c.write(lambda s: fn(s, me, form))
        except TriageError as exc:
            request[SESSION].flash.append(str(exc))
        else:
            if isinstance(done, str):
                request[SESSION].flash.append(done)
        keep = filter_query(filters(request.query, me.username))
        raise web.HTTPSeeOther(f"/incidents/{iid}{keep}")

    async def close_many(request: web.Request) -> web.StreamResponse:
        """Close the ticked candidates with one outcome and reason: each through
        triage.record_outcome in its own transaction, so each has its own record entry and
        audit row, and a refusal (open follow-ups, already closed) stops only that one."""
        me = staff(request, "triage")
        form = await request.post()
        ids = sorted({n for v in form.getall("id", []) if (n := _number(str(v))) is not None})
        outcome = str(form.get("outcome", ""))
        reason = " ".join(str(form.get("reason", "")).split())
        back = f"/incidents{filter_query(filters(request.query, me.username))}"
        flash = request[SESSION].flash
        if outcome not in triage.BULK:
            flash.append("Choose an outcome for the selected incidents (a referral or CPOMS "
                         "record is made one incident at a time).")  # fmt: skip
        elif not reason:
            flash.append("Give the reason for closing the selected incidents.")
        elif not ids or len(ids) > MAX_BULK:
            flash.append(f"Tick between 1 and {MAX_BULK} incidents to close.")
        else:
            closed, refused = 0, []
            for iid in ids:
                if await withheld(me, iid):
                    refused.append(f"#{iid} not closed: no such incident.")
                    continue
                try:
                    await c.write(functools.partial(_close_one, audit=c.audit, who=me, iid=iid,
                                                    outcome=outcome, reason=reason))  # fmt: skip
                    closed += 1
                except TriageError as exc:
                    refused.append(f"#{iid} not closed: {exc}.")
            flash.append(f"Closed {closed} of {len(ids)} as {triage.OUTCOMES[outcome]}.")
            flash.extend(refused)
        raise web.HTTPSeeOther(back)

    async def status(request: web.Request) -> web.StreamResponse:
        iid = incident_id(request)
        return await act(
            request,
            lambda s, me, f: triage.set_status(s, c.audit, me, iid, str(f.get("status", ""))),
        )

    async def outcome(request: web.Request) -> web.StreamResponse:
        iid = incident_id(request)

        def run(s: Store, me: Account, f: Any) -> str:
            result = triage.record_outcome(
                s, c.audit, me, iid, str(f.get("outcome", "")), str(f.get("note", "")),
                cpoms_ref=str(f.get("cpoms_ref", ""))[:200],
                open_reason=str(f.get("open_reason", "")),
            )  # fmt: skip
            return {
                "closed": "Closed.",
                "awaiting confirmation": "Referral recorded as made, and the incident closed "
                "with it; a second senior member of staff confirms it.",
                "referral made, open": "Referral recorded as made; a second senior member of "
                "staff confirms it. The incident stays open while its follow-up actions are.",
            }[result]

        return await act(request, run)

    async def assign(request: web.Request) -> web.StreamResponse:
        iid = incident_id(request)

        def run(s: Store, me: Account, f: Any) -> str:
            name = triage.assign(s, c.audit, me, iid, str(f.get("to", ""))[:64])
            return f"Assigned to {name}." if name else "Assigned to no one."

        return await act(request, run)

    async def note(request: web.Request) -> web.StreamResponse:
        iid = incident_id(request)
        return await act(
            request,
            lambda s, me, f: triage.add_note(
                s, c.audit, me, iid, str(f.get("text", "")), _date(str(f.get("due", "")))
            ),
        )

    async def action_done(request: web.Request) -> web.StreamResponse:
        aid = int(request.match_info["aid"]) if request.match_info["aid"].isdigit() else 0
        of = await c.read(lambda con: _owner(con, "incident_actions", aid))
        return await act(request, lambda s, me, f: triage.complete_action(s, c.audit, me, aid),
                         target=of)  # fmt: skip

    async def referral(request: web.Request) -> web.StreamResponse:
        rid = int(request.match_info["rid"]) if request.match_info["rid"].isdigit() else 0
        confirm = request.match_info["verb"] == "confirm"

        def run(s: Store, me: Account, f: Any) -> str:
            if confirm:
                triage.confirm_referral(s, c.audit, me, rid)
                return "Referral confirmed by a second member of staff; the incident is closed."
            triage.withdraw_referral(s, c.audit, me, rid)
            return "Referral request withdrawn."

        of = await c.read(lambda con: _owner(con, "referrals", rid))
        return await act(request, run, "confirm_referral" if confirm else "triage", target=of)

    async def verify(request: web.Request) -> web.StreamResponse:
        iid = incident_id(request)

        def run(s: Store, me: Account, f: Any) -> str:
            return exports.verify_incident(s, c.audit, me, iid)

        return await act(request, run, "incidents")

    async def export(request: web.Request) -> web.StreamResponse:
        me = staff(request)
        iid = incident_id(request)
        fmt = request.match_info["fmt"]
        await visible(me, iid)  # an alert about staff: 404 (audited) for all but the head
        # Screenshots only when asked for, and only for roles that may see them.
        with_shots = request.query.get("screenshots") == "1" and me.can("screenshots")
        inc = await c.read(lambda con: queries.incident(con, iid))
        if inc is None:
            await c.record(me, "export", f"incident:{iid}", fmt)
            raise web.HTTPNotFound(text="No such incident.")
        shots = None
        if with_shots:
            shots = await c.read(lambda con: export_screenshots.gather(con, c.data, inc))
            for w, why in shots.failed:
                await views_screenshots.record_unshowable(c, w, why)
        named = ",".join(sorted(shots.images)) if shots else ""
        detail = fmt + (f" screenshots={named or 'none held'}" if with_shots else "")
        await c.record(me, "export", f"incident:{iid}", detail)  # who took which screenshots
        _labels(inc, vocabulary.known_categories(c.data))
        body, ctype = await c.read(
            lambda con: exports.render(inc, fmt, me, con, anchors.make(c.data, con), shots)
        )
        return web.Response(
            body=body,
            content_type=ctype,
            headers={"Content-Disposition": f'attachment; filename="incident-{iid}.{fmt}"'},
        )

    app.router.add_get("/incidents", listing)
    app.router.add_get("/incidents/{id}", show)
    app.router.add_post("/incidents/close", close_many)
    app.router.add_post("/incidents/filters", filter_save)
    app.router.add_post("/incidents/filters/delete", filter_delete)
    app.router.add_post("/incidents/{id}/status", status)
    app.router.add_post("/incidents/{id}/outcome", outcome)
    app.router.add_post("/incidents/{id}/note", note)
    app.router.add_post("/incidents/{id}/assign", assign)
    app.router.add_post("/incidents/{id}/verify", verify)
    app.router.add_post("/incidents/{id}/actions/{aid}/done", action_done)
    app.router.add_post("/incidents/{id}/referrals/{rid}/{verb:confirm|withdraw}", referral)
    app.router.add_get("/incidents/{id}/export.{fmt:pdf|json|csv}", export)


def _team(con: Any, about: int) -> list[tuple[str, str]]:
    """Who incident `about` may be given to: enabled accounts whose role triages and sees it
    (an alert about staff: collector/incidents/staff_alerts.py), by name."""
    return [(str(a["username"]), str(a["display_name"])) for a in accounts.listing(con)
            if a["role"] in accounts.CAN["triage"] and a["disabled_ms"] is None
            and not a["awaiting_approval"]
            and not staff_alerts.hidden_from(con, str(a["role"]), about)]  # fmt: skip


def _owner(con: Any, table: str, row_id: int) -> int | None:
    """The incident a follow-up or referral belongs to (`table` is one of those two)."""
    found = con.execute(f"SELECT incident_id FROM {table} WHERE id = ?",  # noqa: S608 -- constant
                        [row_id]).fetchone()  # fmt: skip
    return int(found[0]) if found else None


def _close_one(
    s: Store, *, audit: Audit, who: Account, iid: int, outcome: str, reason: str
) -> str:
    return triage.record_outcome(s, audit, who, iid, outcome, reason)


def _labels(inc: dict[str, Any], known: frozenset[str]) -> None:
    """Categories as a page or export may name them: a candidate made before ingest checked a
    PC's strings (migration 9) may carry one no policy defines; it is shown as "unknown"."""
    inc["category"] = vocabulary.shown(inc["category"], known)
    shown = {vocabulary.shown(c, known) for c in inc["categories"].split(",") if c}
    inc["categories"] = ",".join(sorted(shown))
    for row in (*inc["evidence"], *inc["exempted"]):
        row["category"] = vocabulary.shown(row["category"], known)
