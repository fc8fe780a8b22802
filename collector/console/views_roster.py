"""The roster page (issue 17): how many pupils, the last import and the rows it could not
match; and an import from the console (the MIS export uploaded, with a directory export or a
naming rule). DSL and head only; every view and import is audited."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from collector import policy
from collector.console.sessions import SESSION, account_of
from collector.roster import book, mis_csv
from collector.roster import profiles as roster_profiles

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext


def _text(field: object) -> str | None:
    """An uploaded file's text; None when the field was left empty."""
    if isinstance(field, web.FileField):
        data = field.file.read()
        return mis_csv.decode(data) if data else None
    return None


def routes(app: web.Application, c: ConsoleContext) -> None:
    async def show(request: web.Request) -> web.StreamResponse:
        me = account_of(request)
        if not me.can("roster"):
            raise web.HTTPForbidden(text="Your role cannot see the roster.")
        await c.record(me, "view_roster", "roster")
        got = await c.read(book.summary)
        profiles = await c.read(roster_profiles.summary)
        return c.render(request, "roster.html", r=got, profiles=profiles)

    async def upload(request: web.Request) -> web.StreamResponse:
        me = account_of(request)
        if not me.can("roster"):
            raise web.HTTPForbidden(text="Your role cannot import the roster.")
        form = await request.post()
        text, accounts = _text(form.get("file")), _text(form.get("accounts"))
        naming = str(form.get("naming") or "").strip() or None
        if text is None:
            message = "Choose the MIS export (CSV) to import."
        elif (accounts is None) == (naming is None):
            message = "Give either an accounts file or a naming rule (not both)."
        else:
            try:
                r = await c.write(lambda s: book.import_csv(
                    s, c.audit, me.username, text, naming=naming, directory=accounts))  # fmt: skip
            except mis_csv.RosterFileError as exc:
                message = f"Nothing imported: {exc}"
            else:
                message = (f"Imported {r.rows} rows: {r.added} added, {r.updated} updated, "
                           f"{r.left} marked left, {len(r.unmatched)} unmatched, "
                           f"{len(r.duplicates)} duplicates.")  # fmt: skip
                message += await _republish(c)
        request[SESSION].flash.append(message)
        raise web.HTTPSeeOther("/roster")

    app.router.add_get("/roster", show)
    app.router.add_post("/roster", upload)


async def _republish(c: ConsoleContext) -> str:
    """With profiles following the year group, publish the policy again (off the writer and
    the console's loop: it compiles and signs); what happened, as a sentence to add."""
    if not await c.read(roster_profiles.enabled):
        return ""
    assign = await c.read(roster_profiles.assignments)
    approved = await c.read(policy.approved_exemptions_in)
    version, error = await asyncio.to_thread(policy.publish_again, c.data, approved, assign)
    if version is None:
        return f" Profiles were not updated on the PCs: {error}."
    return f" Published policy version {version} with each login's profile from the roster."
