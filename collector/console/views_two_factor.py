"""Setting up two-factor sign-in: a new secret offered as an otpauth URI and as text, confirmed
by a code from the app, then recovery codes shown once. Roles that need a second factor
(collector/two_factor.py) reach nothing else until they have one; anyone may set up a new
authenticator (a new phone) from here while logged in, with their password."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web
from markupsafe import Markup

from collector import accounts, two_factor
from collector.console.sessions import SESSION, account_of
from collector.storage.store import Store

if TYPE_CHECKING:
    from collector.console.context import ConsoleContext

log = logging.getLogger(__name__)


def routes(app: web.Application, c: ConsoleContext) -> None:
    from collector.console.views_auth import HOME

    def offer(request: web.Request, status: int = 200, error: str = "") -> web.Response:
        session, me = request[SESSION], account_of(request)
        if not session.enrolling:
            session.enrolling = two_factor.new_secret()
        return c.render(
            request, "two_factor.html", status=status, error=error,
            uri=two_factor.uri(session.enrolling, me.username), secret=session.enrolling,
            # segno draws the SVG: path data and our own title, nothing a visitor typed
            qr=Markup(two_factor.qr_svg(two_factor.uri(session.enrolling, me.username))),  # noqa: S704
        )  # fmt: skip

    async def form(request: web.Request) -> web.StreamResponse:
        me = account_of(request)
        await c.record(me, "view_two_factor", f"user:{me.username}")
        return offer(request)

    async def confirm(request: web.Request) -> web.StreamResponse:
        session, me = request[SESSION], account_of(request)
        form = await request.post()
        code = str(form.get("code", ""))[:20]
        if me.two_factor:  # replacing a factor: a session alone (say, left open) is not enough
            password = str(form.get("password", ""))[:200]
            if await c.read(lambda con: accounts.authenticate(con, me.username, password)) is None:
                await c.record(me, "two_factor_refused", f"user:{me.username}", "password")
                return offer(request, 400, "Your password is not right.")
        secret = session.enrolling
        step = two_factor.matching_step(secret, code, None) if secret else None
        if step is None:
            await c.record(me, "two_factor_refused", f"user:{me.username}", "wrong code")
            return offer(request, 400, "That code is not right. Check the app's clock and the "
                                       "account you added, and try the next code.")  # fmt: skip
        codes = two_factor.new_recovery_codes()

        def store(s: Store) -> None:
            with s.transaction():
                two_factor.enrol(s, me.username, secret, codes)
                s.con.execute("UPDATE accounts SET totp_last_step = ? WHERE username = ?",
                              [step, me.username])  # fmt: skip -- this code is now used
                c.audit.append(s, me.username, "two_factor_enrolled", f"user:{me.username}")

        await c.write(store)
        session.enrolling = ""
        log.info("console.two_factor_enrolled user=%s", me.username)
        return c.render(request, "two_factor_done.html", codes=codes, home=HOME[me.role])

    app.router.add_get("/two-factor", form)
    app.router.add_post("/two-factor", confirm)
