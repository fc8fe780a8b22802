"""A screenshot an incident's event names: a page for DSL roles, and the image itself.

Only roles that may see screenshots (collector/accounts.py) reach either; any other account
gets "not found", as if there were none, and the refusal is audited. The image is decrypted
in memory for each answer (collector/integrity/screenshots.py), served from the console's own
origin (the CSP's img-src 'self') and never cached; each time it is served is an audit row
naming who saw which screenshot.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from collector.accounts import Account
from collector.console.sessions import account_of
from collector.incidents import coverage, queries
from collector.integrity import screenshots
from collector.integrity.screenshots import Unshowable, Wanted
from collector.storage.store import Store

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext

_SHA = "{sha:[0-9a-f]{64}}"


async def record_unshowable(c: ConsoleContext, w: Wanted, why: str) -> None:
    """A tampering record, made a candidate at once (not at the PC's next tampering)."""

    def run(s: Store) -> None:
        if screenshots.record_tampering(s, w, why):
            coverage.tampering(c.incidents.engine, s)

    await c.write(run)


def routes(app: web.Application, c: ConsoleContext) -> None:
    async def wanted(request: web.Request) -> tuple[Account, int, Wanted]:
        me = account_of(request)
        text = request.match_info["id"]
        iid = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0
        sha = request.match_info["sha"]
        if not me.can("screenshots"):
            await c.record(me, "refused", f"incident:{iid}", f"kind=screenshot_role sha256={sha}")
            raise web.HTTPNotFound(text="Not found.")
        sigs = await c.read(lambda con: queries.evidence(con, iid))
        for s in sigs:
            if s["screenshot"] == sha:
                event_id = str(s["event"].get("event_id", ""))
                return me, iid, Wanted(s["agent_id"], int(s["seq"]), event_id, sha)
        raise web.HTTPNotFound(text="This incident has no such screenshot.")

    async def opened(me: Account, iid: int, w: Wanted) -> tuple[bytes, str] | str:
        """The image and its type, or the sentence saying why it is not shown."""
        path = await c.read(lambda con: screenshots.held_path(con, w))
        if path is None:
            return ("Screenshot not received yet: the PC took one for this event, but it has "
                    "not reached the collector. It is sent when the PC is next connected.")
        try:
            return await asyncio.to_thread(screenshots.open_image, c.data, w, path)
        except Unshowable as exc:
            why = str(exc)
            await record_unshowable(c, w, why)
            await c.record(me, "screenshot_unshowable", f"incident:{iid}",
                           f"sha256={w.sha256} agent={w.agent_id} seq={w.seq}")  # fmt: skip
            return why

    async def page(request: web.Request) -> web.StreamResponse:
        me, iid, w = await wanted(request)
        got = await opened(me, iid, w)
        problem = got if isinstance(got, str) else ""
        return c.render(request, "screenshot.html", iid=iid, w=w, problem=problem)

    async def image(request: web.Request) -> web.StreamResponse:
        me, iid, w = await wanted(request)
        got = await opened(me, iid, w)
        if isinstance(got, str):
            raise web.HTTPNotFound(text=got)
        await c.record(me, "view_screenshot", f"incident:{iid}",
                       f"sha256={w.sha256} agent={w.agent_id} seq={w.seq}")  # fmt: skip
        body, ctype = got
        return web.Response(body=body, content_type=ctype,
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    app.router.add_get(f"/incidents/{{id}}/screenshots/{_SHA}", page)
    app.router.add_get(f"/incidents/{{id}}/screenshots/{_SHA}/image", image)
