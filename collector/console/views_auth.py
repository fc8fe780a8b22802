"""Logging in and out, and the home page that sends each role to its own work."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from aiohttp import web

from collector import accounts

if TYPE_CHECKING:
    from collector.console.server import Console

log = logging.getLogger(__name__)
HOME = {
    "dsl": "/incidents",
    "deputy_dsl": "/incidents",
    "head": "/incidents",
    "technician": "/agents",
    "governor": "/reports/governors",
}


def routes(app: web.Application, c: Console) -> None:
    async def home(request: web.Request) -> web.StreamResponse:
        me = request["session"].account
        raise web.HTTPSeeOther(HOME[me.role])

    async def login_form(request: web.Request) -> web.StreamResponse:
        if request["session"].account is not None:
            raise web.HTTPSeeOther("/")
        return c.render(request, "login.html", error="", username="")

    async def login(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        username = str(form.get("username", "")).strip().lower()[:40]
        password = str(form.get("password", ""))[:200]
        peer = request.remote or "?"
        keys = (f"user:{username}", f"addr:{peer}")
        wait = c.throttle.wait(*keys)
        if wait > 0:
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
        account = await c.read(lambda con: accounts.authenticate(con, username, password))
        if account is None:
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
                error="That username and password do not match.",
            )
        c.throttle.succeeded(keys[0])
        request["session"] = c.sessions.login(request["session"], account)
        await c.record(account, "login", "console", f"addr={peer}")
        log.info("console.login user=%s role=%s", account.username, account.role)
        raise web.HTTPSeeOther(HOME[account.role])

    async def logout(request: web.Request) -> web.StreamResponse:
        session = request["session"]
        if session.account is not None:
            await c.record(session.account, "logout", "console")
        c.sessions.drop(session)
        request["session"] = c.sessions.new()
        raise web.HTTPSeeOther("/login")

    app.router.add_get("/", home)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
