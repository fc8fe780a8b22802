"""Console accounts, for the DSL and the head teacher: list them, add one with a role, reset a
password, disable an account, approve a senior role another made.

A new or reset password is temporary: made here, shown once on the page that answers the form
(never stored in clear, logged or audited), and the account can do nothing but change it at its
next login. A reset or a disable ends the account's sessions at once. No one disables their own
account, and the last enabled DSL stays. A senior role given here waits for a second senior
(never its maker) to approve it before the account can sign in. Every view and action, refused
ones too, is audited.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from aiohttp import web

from collector import accounts, two_factor
from collector.accounts import Account, AccountError
from collector.console.sessions import SESSION, account_of
from collector.storage.store import Store

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext

log = logging.getLogger(__name__)
USERNAME = r"{username:[a-z][a-z0-9._-]{1,39}}"


def routes(app: web.Application, c: ConsoleContext) -> None:
    def manager(request: web.Request) -> Account:
        me = account_of(request)
        if not me.can("manage_accounts"):
            raise web.HTTPForbidden(text="Your role cannot manage accounts.")
        return me

    async def refuse(
        request: web.Request, me: Account, action: str, username: str, why: str
    ) -> web.StreamResponse:
        await c.record(me, f"{action}_refused", f"user:{username}", why)
        request[SESSION].flash.append(f"{why[0].upper()}{why[1:]}.")
        raise web.HTTPSeeOther("/accounts")

    def shown_once(
        request: web.Request, account: Account, password: str, what: str, ended: int = 0
    ) -> web.StreamResponse:
        return c.render(
            request,
            "temporary_password.html",
            account=account,
            password=password,
            what=what,
            ended=ended,
        )

    async def listing(request: web.Request) -> web.StreamResponse:
        me = manager(request)
        await c.record(me, "view_accounts", "accounts")
        rows = await c.read(accounts.listing)
        return c.render(request, "accounts.html", rows=rows)

    async def add(request: web.Request) -> web.StreamResponse:
        me = manager(request)
        form = await request.post()
        username = str(form.get("username", "")).strip().lower()[:40]
        name = " ".join(str(form.get("display_name", "")).split())[:80]
        role = str(form.get("role", ""))[:20]
        try:
            accounts.check_new(username, role)
        except AccountError as exc:
            return await refuse(request, me, "user_add", username, str(exc))
        password = accounts.temporary_password()
        # argon2id takes a quarter of a second: not on the loop, not on the writer
        hashed = await asyncio.to_thread(accounts.hash_password, password)

        held = role in accounts.SENIOR  # a second senior approves it before it signs in

        def run(s: Store) -> Account:
            with s.transaction():
                made = accounts.add(s, username, name, role, hashed, must_change=True,
                                    created_by=me.username, awaiting_approval=held)  # fmt: skip
                detail = f"role={role} temporary" + (" awaiting_approval" if held else "")
                c.audit.append(s, me.username, "user_added", f"user:{username}", detail)
                return made

        try:
            made = await c.write(run)
        except AccountError as exc:
            return await refuse(request, me, "user_add", username, str(exc))
        log.info("console.user_added by=%s user=%s role=%s", me.username, username, role)
        return shown_once(request, made, password, "added")

    async def reset(request: web.Request) -> web.StreamResponse:
        me = manager(request)
        username = request.match_info["username"]
        if username == me.username:
            return await refuse(
                request, me, "password_reset", username,
                "to change your own password use Change password",
            )  # fmt: skip
        password = accounts.temporary_password()
        hashed = await asyncio.to_thread(accounts.hash_password, password)

        def run(s: Store) -> Account:
            with s.transaction():
                if accounts.get(s.con, username) is None:
                    raise AccountError(f"no enabled account {username!r}")
                done = accounts.set_password(s, username, hashed, must_change=True)
                # A reset is for someone locked out: a lost phone too. They set up a new one
                # after choosing their password.
                two_factor.clear(s, username)
                c.audit.append(s, me.username, "password_reset", f"user:{username}",
                               "temporary two_factor_cleared")  # fmt: skip
                return replace(done, two_factor=False)

        try:
            done = await c.write(run)
        except AccountError as exc:
            return await refuse(request, me, "password_reset", username, str(exc))
        ended = c.sessions.end_user(username)
        log.info("console.password_reset by=%s user=%s sessions_ended=%d", me.username, username,
                 ended)  # fmt: skip
        return shown_once(request, done, password, "reset", ended)

    async def disable(request: web.Request) -> web.StreamResponse:
        me = manager(request)
        username = request.match_info["username"]
        if username == me.username:
            return await refuse(
                request, me, "user_disable", username, "you cannot disable your own account"
            )

        def run(s: Store) -> bool:
            with s.transaction():
                done = accounts.disable(s, username, keep_a_dsl=True)
                if done:
                    c.audit.append(s, me.username, "user_disabled", f"user:{username}")
                return done

        try:
            done = await c.write(run)
        except AccountError as exc:
            return await refuse(request, me, "user_disable", username, str(exc))
        if not done:
            return await refuse(request, me, "user_disable", username, "it was already disabled")
        ended = c.sessions.end_user(username)
        log.info("console.user_disabled by=%s user=%s sessions_ended=%d", me.username, username,
                 ended)  # fmt: skip
        request[SESSION].flash.append(
            f"Disabled {username}." + (f" {ended} open session(s) ended." if ended else "")
        )
        raise web.HTTPSeeOther("/accounts")

    async def approve(request: web.Request) -> web.StreamResponse:
        me = manager(request)
        username = request.match_info["username"]

        def run(s: Store) -> Account:
            with s.transaction():
                done = accounts.approve(s, username, me)
                c.audit.append(s, me.username, "role_approved", f"user:{username}",
                               f"role={done.role}")  # fmt: skip
                return done

        try:
            done = await c.write(run)
        except AccountError as exc:
            return await refuse(request, me, "role_approve", username, str(exc))
        log.info("console.role_approved by=%s user=%s role=%s", me.username, username, done.role)
        request[SESSION].flash.append(
            f"Approved {username} as {accounts.ROLES[done.role]}: they can sign in now."
        )
        raise web.HTTPSeeOther("/accounts")

    r = app.router
    r.add_get("/accounts", listing)
    r.add_post("/accounts", add)
    r.add_post(f"/accounts/{USERNAME}/reset", reset)
    r.add_post(f"/accounts/{USERNAME}/disable", disable)
    r.add_post(f"/accounts/{USERNAME}/approve", approve)
