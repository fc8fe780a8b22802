"""The DPIA page (DSL and head teacher): the DPIA draft and the three privacy notices, made from
the live settings each time the page is shown, with what changed since the last pack written.
Each view and download is audited with the fingerprint of the settings it showed; "Write this
pack" saves it in DATA/dpia, as `safeguard-collector dpia` does, and later packs are compared
with it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from collector.console.sessions import SESSION, account_of
from collector.privacy import dpia
from collector.privacy.dpia_doc import to_markdown
from collector.privacy.dpia_settings import DpiaError
from collector.roster import book
from collector.roster import profiles as roster_profiles
from collector.storage import retention

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext

NAMES = ("dpia", "notice-pupils", "notice-parents", "notice-staff")


def routes(app: web.Application, c: ConsoleContext) -> None:
    async def pack(request: web.Request) -> dpia.Pack:
        if not account_of(request).can("dpia"):
            raise web.HTTPForbidden(text="Your role cannot see this page.")
        periods = await c.read(retention.periods)
        roster = await c.read(lambda con: bool(book.summary(con)["pupils"]))
        by_year = await c.read(roster_profiles.enabled)
        settings = await asyncio.to_thread(dpia.gather, c.data, periods, c.cfg.notify, roster,
                                           by_year)  # fmt: skip
        last = await asyncio.to_thread(dpia.previous, c.data)
        return await asyncio.to_thread(dpia.build, settings, last, dpia.now_text())

    def unavailable(request: web.Request, exc: DpiaError) -> web.StreamResponse:
        return c.render(request, "error.html", status=503, message=str(exc))

    async def page(request: web.Request) -> web.StreamResponse:
        try:
            got = await pack(request)
        except DpiaError as exc:
            return unavailable(request, exc)
        await c.record(account_of(request), "view_dpia", "dpia",
                       f"fingerprint={got.fingerprint[:16]}")  # fmt: skip
        return c.render(request, "dpia.html", pack=got, kind=lambda b: type(b).__name__)

    async def markdown(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            got = await pack(request)
        except DpiaError as exc:
            return unavailable(request, exc)
        doc = next(d for d in got.docs if d.name == name)
        await c.record(account_of(request), "view_dpia", f"dpia:{name}",
                       f"fingerprint={got.fingerprint[:16]}")  # fmt: skip
        return web.Response(
            text=to_markdown(doc), content_type="text/markdown", charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.md"'},
        )  # fmt: skip

    async def write(request: web.Request) -> web.StreamResponse:
        try:
            got = await pack(request)
        except DpiaError as exc:
            return unavailable(request, exc)
        folder = dpia.default_folder(c.data)
        await asyncio.to_thread(dpia.write, c.data, got, folder)
        await c.record(account_of(request), "dpia_written", "dpia",
                       f"fingerprint={got.fingerprint} folder={folder}")  # fmt: skip
        request[SESSION].flash.append(
            f"Pack written to {folder} on the collector. The next pack says what changed "
            "since this one.")  # fmt: skip
        raise web.HTTPSeeOther("/dpia")

    r = app.router
    r.add_get("/dpia", page)
    r.add_get("/dpia/{name:" + "|".join(NAMES) + "}.md", markdown)
    r.add_post("/dpia", write)
