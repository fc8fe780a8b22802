"""Logging in and out, changing your own password, and the home page that sends each role to
its own work. An account with a temporary password goes from the login to Change password."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from aiohttp import web

from collector import accounts, two_factor
from collector.accounts import ROLES, Account, AccountError
from collector.console.sessions import SESSION, PreLogin, account_of
from collector.storage.store import Store

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext

log = logging.getLogger(__name__)
HOME = {
    "dsl": "/dashboard",
    "deputy_dsl": "/dashboard",
    "head": "/dashboard",
    "technician": "/agents",
    "governor": "/reports/governors",
}


def routes(app: web.Application, c: ConsoleContext) -> None:
    async def home(request: web.Request) -> web.StreamResponse:
        me = account_of(request)
        raise web.HTTPSeeOther(HOME[me.role])

    async def login_form(request: web.Request) -> web.StreamResponse:
        if request[SESSION].account is not None:
            raise web.HTTPSeeOther("/")
        return c.render(request, "login.html", error="", username="")

    async def second_factor(username: str, code: str) -> str | None:
        """Use up a code ("totp" or "recovery"): checked on a reader first, so a wrong guess
        costs the writer nothing; a right one is recorded there, once."""
        if not code or not await c.read(lambda con: two_factor.check(con, username, code)):
            return None
        return await c.write(lambda s: two_factor.use(s, username, code))

    async def past_the_throttle(
        username: str, password: str, code: str
    ) -> tuple[Account, str] | None:
        """While failures hold logins back, a fresh second factor still lets its holder in: a
        guesser (or a pupil behind the same proxy) cannot lock the DSL out. Nothing else is
        checked, and the answer is the same whatever was wrong, so it tells a guesser nothing."""
        factor = await second_factor(username, code)
        if factor is None:
            return None
        account = await c.read(lambda con: accounts.authenticate(con, username, password))
        return None if account is None or not account.two_factor else (account, factor)

    async def credentials(
        username: str, password: str, code: str
    ) -> tuple[Account, str] | None:
        account = await c.read(lambda con: accounts.authenticate(con, username, password))
        if account is None:
            return None
        if not account.two_factor:
            return account, "none"
        factor = await second_factor(username, code)
        return None if factor is None else (account, factor)

    async def login(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        username = str(form.get("username", "")).strip().lower()[:40]
        password = str(form.get("password", ""))[:200]
        code = str(form.get("code", "")).strip()[:40]
        peer = c.client_address(request)
        # This account from this address, this address, this account from anywhere, everyone:
        # a pupil failing as "dsl" slows only their own address (Throttle).
        keys = (f"user:{username}@{peer}", f"addr:{peer}", f"wide:{username}", "all")
        wait = c.throttle.wait(*keys)
        if wait > 0:
            passed = await past_the_throttle(username, password, code)
            if passed is None:
                log.warning("console.login_throttled addr=%s", peer)
                resp = c.render(
                    request,
                    "login.html",
                    status=429,
                    username=username,
                    error=f"Too many failed attempts. Try again in {math.ceil(wait)} seconds.",
                )
                resp.headers["Retry-After"] = str(math.ceil(wait))
                return resp
        else:
            passed = await credentials(username, password, code)
        if passed is None:
            c.throttle.failed(*keys)
            log.warning("console.login_failed addr=%s", peer)
            await c.write(
                lambda s: c.audit.append(
                    s, username or "?", "login_failed", "console", f"addr={peer}"
                )
            )
            return c.render(
                request,
                "login.html",
                status=401,
                username=username,
                error="That username, password and code do not match.",
            )
        account, factor = passed
        c.throttle.succeeded(keys[0], keys[2])
        if account.awaiting_approval:  # right password, but no second senior has said yes
            await c.write(lambda s: c.audit.append(
                s, account.username, "login_refused", "console",
                f"addr={peer} awaiting_approval role={account.role}"))  # fmt: skip
            return c.render(
                request, "login.html", status=403, username=username,
                error=f"Your account ({ROLES[account.role]}) waits for a second senior member "
                "of staff to approve it: ask the head teacher or another DSL to approve it on "
                "their Accounts page.",
            )  # fmt: skip
        request[SESSION] = c.sessions.login(request[SESSION], account)

        def logged_in(s: Store) -> None:
            with s.transaction():
                accounts.logged_in(s, account.username)
                detail = f"addr={peer} second_factor={factor}" + (
                    " past_throttle" if wait > 0 else ""
                ) + (" temporary_password" if account.must_change else "")
                c.audit.append(s, account.username, "login", "console", detail)

        await c.write(logged_in)
        log.info("console.login user=%s role=%s second_factor=%s", account.username,
                 account.role, factor)  # fmt: skip
        if factor == "recovery":
            left = await c.read(lambda con: two_factor.recovery_left(con, account.username))
            request[SESSION].flash.append(
                f"You used a recovery code; {left} left. Set up your authenticator again "
                "from Two-factor if you have lost it."
            )
        if account.must_change:
            request[SESSION].flash.append(
                "You logged in with a temporary password. Choose your own to continue."
            )
            raise web.HTTPSeeOther("/password")
        if account.must_enrol:
            raise web.HTTPSeeOther("/two-factor")
        raise web.HTTPSeeOther(HOME[account.role])

    async def logout(request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        if session.account is not None:
            await c.record(session.account, "logout", "console")
        c.sessions.drop(session)
        request[SESSION] = PreLogin.visitor("")  # logged out: the middleware clears the cookie
        raise web.HTTPSeeOther("/login")

    async def password_form(request: web.Request) -> web.StreamResponse:
        me = account_of(request)
        await c.record(me, "view_password_change", f"user:{me.username}")
        return c.render(request, "password.html", error="")

    async def password_change(request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        me = account_of(request)
        form = await request.post()
        current = str(form.get("current", ""))[:200]
        new, again = str(form.get("new", ""))[:200], str(form.get("again", ""))[:200]

        async def refuse(why: str, status: int = 400) -> web.StreamResponse:
            await c.record(me, "password_change_refused", f"user:{me.username}", why)
            return c.render(request, "password.html", status=status, error=why)

        # Guesses at the current password count against the same per-user limit as logins.
        key = f"user:{me.username}"
        wait = c.throttle.wait(key)
        if wait > 0:
            resp = await refuse(
                f"Too many failed attempts. Try again in {math.ceil(wait)} seconds.", 429
            )
            resp.headers["Retry-After"] = str(math.ceil(wait))
            return resp
        if new != again:
            return await refuse("The two new passwords are not the same.")
        if new == current:
            return await refuse("Choose a new password, not the one you have now.")
        checked = await c.read(lambda con: accounts.authenticate(con, me.username, current))
        if checked is None:
            c.throttle.failed(key)
            return await refuse("Your current password is not right.")
        try:  # argon2id takes a quarter of a second: not on the loop, not on the writer
            hashed = await asyncio.to_thread(accounts.hash_password, new)
        except AccountError as exc:
            return await refuse(f"{str(exc)[0].upper()}{str(exc)[1:]}.")

        def store(s: Store) -> Account:
            with s.transaction():
                done = accounts.set_password(s, me.username, hashed, must_change=False)
                c.audit.append(s, me.username, "password_changed", f"user:{me.username}")
                return done

        changed = await c.write(store)
        c.throttle.succeeded(key)
        # A fresh session id for the new credentials; every other session of this account ends.
        request[SESSION] = fresh = c.sessions.login(session, changed)
        ended = c.sessions.end_user(me.username, keep=fresh)
        log.info("console.password_changed user=%s other_sessions_ended=%d", me.username, ended)
        fresh.flash.append(
            "Your password is changed."
            + (f" {ended} other session(s) of yours were logged out." if ended else "")
        )
        raise web.HTTPSeeOther("/two-factor" if changed.must_enrol else HOME[changed.role])

    app.router.add_get("/", home)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/password", password_form)
    app.router.add_post("/password", password_change)
