"""The DSL's web console: aiohttp on a thread and event loop of its own, Jinja2 templates.

The console never shares the loop that takes agents' batches (issue 16: a flood of web requests
once delayed ingest). Reads run on worker threads with `Store.reader()` connections (never on a
loop); writes go through the single writer (`Ingestor.call`). Every page needs a logged-in
account with the right role; every POST needs the session's CSRF token (before login, a signed
token the browser keeps: nothing is stored for a visitor); pages are never cached. Each request
re-reads its account, so a disabled account or a changed password ends older sessions at once,
and an account with a temporary password reaches nothing but the change-password page.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import hmac
import logging
import os
import queue
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import jinja2
from aiohttp import web

from collector import accounts
from collector.accounts import ROLES, Account
from collector.console import client_address
from collector.console.admission import Pacer
from collector.console.config import ConsoleConfig
from collector.console.refusals import Refusals
from collector.console.sessions import ENDED, SESSION, PreLogin, Session, Sessions, Throttle
from collector.incidents import concerns
from collector.incidents.runtime import IncidentRuntime
from collector.incidents.triage import OUTCOMES, STATUSES
from collector.intake.ingest import Ingestor
from collector.integrity import audit
from collector.paths import DataDir, secret_key
from collector.roster import book
from collector.storage.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
HERE = Path(__file__).resolve().parent
READERS = 4
NICE = 10  # the console thread's niceness: below ingest's
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC = ("/login", "/static/")
# What a page raises when a query or form value makes no sense (too large for DuckDB's BIGINT,
# a date out of range, a string that is not UTF-8): a 400 for the sender, not a 500.
ODD_INPUT = (ValueError, OverflowError, UnicodeError, duckdb.ConversionException,
             duckdb.OutOfRangeException, duckdb.InvalidInputException)  # fmt: skip
# All an account with a temporary password may reach until it has chosen its own.
WHILE_TEMPORARY = ("/password", "/logout", "/static/")
# All an account that needs a second factor may reach until it has set one up.
WHILE_ENROLLING = ("/two-factor", "/logout", "/static/")
# Why a request was refused, when a status alone does not say (a form's token, its origin).
REFUSAL: web.RequestKey[str] = web.RequestKey("refusal", str)
REFUSED = {403: "forbidden", 429: "throttled", 503: "busy"}
# Whether this request's handler wrote its own audit row (set by Console.record; one context
# per request task, so a page that says nothing gets a plain "view" row from the middleware).
_recorded: contextvars.ContextVar[bool] = contextvars.ContextVar("recorded", default=False)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def load_key(data: DataDir) -> bytes:
    """The key that signs pre-login form tokens (made on first use, owner-only)."""
    return secret_key(data, "console.key")


def when(ms: int | None) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%a %d %b %Y %H:%M")


class Console:
    def __init__(
        self,
        data: DataDir,
        ingestor: Ingestor,
        incidents: IncidentRuntime,
        cfg: ConsoleConfig,
        tls: bool,
    ) -> None:
        self.data, self.ingestor, self.incidents, self.cfg, self.tls = (
            data,
            ingestor,
            incidents,
            cfg,
            tls,
        )
        self.audit = audit.Audit(audit.load_key(data))
        self.sessions = Sessions(cfg.session_idle_minutes * 60, cfg.session_max_hours * 3600)
        self.prelogin = PreLogin(load_key(data))
        self.proxies = client_address.networks(cfg.trusted_proxies)
        self.throttle = Throttle()
        self.pacer = Pacer()
        self.refusals = Refusals()
        self._flusher: asyncio.Task[None] | None = None
        self.cookie = "__Host-sg_session" if tls else "sg_session"
        self.pre_cookie = "__Host-sg_form" if tls else "sg_form"
        self.pool = ThreadPoolExecutor(READERS, thread_name_prefix="console-read")
        self._readers: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["when"] = when
        self.names: dict[str, book.Entry] = {}  # the roster, reloaded when an import changes it
        self._names_generation = -1
        self.env.globals.update(
            OUTCOMES=OUTCOMES, STATUSES=STATUSES, ROLES=ROLES, MIN_PASSWORD=accounts.MIN_PASSWORD,
            concern_title=concerns.title, pupil=self._pupil,
        )
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="console", daemon=True)

    # -- database ----------------------------------------------------------------------------
    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        def run() -> T:
            con = self._readers.get()
            try:
                return fn(con)
            finally:
                self._readers.put(con)

        return await asyncio.get_running_loop().run_in_executor(self.pool, run)

    async def write(self, fn: Callable[[Store], T]) -> T:
        return await asyncio.wrap_future(self.ingestor.call(fn))

    async def record(self, who: Account, action: str, target: str, detail: str = "") -> None:
        """An audit row, written before the page that it records is shown."""
        _recorded.set(True)
        await self.write(lambda s: self.audit.append(s, who.username, action, target, detail))

    def client_address(self, request: web.Request) -> str:
        """The sender's address; behind a trusted proxy, the one it forwarded for."""
        forwarded = request.headers.get("X-Forwarded-For")
        return client_address.client(request.remote, forwarded, self.proxies)

    # -- pages -------------------------------------------------------------------------------
    def render(
        self, request: web.Request, name: str, status: int = 200, **ctx: Any
    ) -> web.Response:
        session: Session = request[SESSION]
        flash, session.flash = session.flash, []
        html = self.env.get_template(name).render(
            me=session.account, csrf=session.csrf, flash=flash, path=request.path,
            storage=self.ingestor.storage.outage, chains=self.incidents.chain_problems, **ctx,
        )  # fmt: skip
        return web.Response(text=html, content_type="text/html", status=status)

    @jinja2.pass_context
    def _pupil(self, ctx: jinja2.runtime.Context, account: str | None) -> str:
        """ "Cara Jones (Y5, 5B) pupil.cara" for those who see incidents; anyone else (a
        governor, a technician) sees the login name alone, never a child's name."""
        me = ctx.get("me")
        if me is None or not me.can("incidents"):
            return account or ""
        return book.shown(self.names, account)

    async def _load_names(self) -> None:
        generation = book.generation()  # taken first: a change meanwhile reloads next time
        if generation != self._names_generation:
            self.names = await self.read(book.names)
            self._names_generation = generation

    def deny(
        self, request: web.Request, why: str = "Your role cannot see this page."
    ) -> web.Response:
        return self.render(request, "error.html", status=403, message=why)

    def build(self) -> web.Application:
        from collector.console import (
            views_accounts,
            views_auth,
            views_chronology,
            views_dashboard,
            views_dpia,
            views_incidents,
            views_roster,
            views_school,
            views_screenshots,
            views_two_factor,
        )

        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024)
        views_auth.routes(app, self)
        views_chronology.routes(app, self)
        views_dashboard.routes(app, self)
        views_accounts.routes(app, self)
        views_incidents.routes(app, self)
        views_screenshots.routes(app, self)
        views_school.routes(app, self)
        views_roster.routes(app, self)
        views_dpia.routes(app, self)
        views_two_factor.routes(app, self)
        app.router.add_static("/static/", HERE / "static", show_index=False)
        app.on_response_prepare.append(self._no_banner)
        return app

    @staticmethod
    async def _no_banner(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.pop("Server", None)  # aiohttp names itself and its version

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        session = self.sessions.get(request.cookies.get(self.cookie))
        ended, issued = None, None
        if session is not None and session.account is None:  # ended elsewhere: say why, once
            ended, session = session, None
        if session is None:  # not logged in: nothing is stored for this request
            token = request.cookies.get(self.pre_cookie)
            if not self.prelogin.valid(token):
                token = issued = self.prelogin.issue()
            session = PreLogin.visitor(str(token))
            if ended is not None:
                session.flash = ended.flash
        request[SESSION] = session
        if not session.id and not await self.pacer.admit():
            resp: web.StreamResponse = web.Response(
                status=503, headers={"Retry-After": "5"},
                text="The console is busy. Try again in a few seconds.")  # fmt: skip
        else:
            _recorded.set(False)
            resp = await self._answer(request, handler, session)
        await self._audit_request(request, resp)
        current: Session = request[SESSION]
        if ended is not None and not session.flash:  # its message has been shown
            self.sessions.drop(ended)
        cookie = {"httponly": True, "secure": self.tls, "samesite": "Strict", "path": "/"}
        if current.id and current is not session:
            resp.set_cookie(self.cookie, current.id, **cookie)  # type: ignore[arg-type]
        elif session.id and not current.id:
            resp.del_cookie(self.cookie, path="/")  # logged out
        if issued is not None and not current.id:
            resp.set_cookie(self.pre_cookie, issued, **cookie)  # type: ignore[arg-type]
        h = resp.headers
        h["Content-Security-Policy"] = CSP
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Frame-Options"] = "DENY"
        if not request.path.startswith("/static/"):
            h["Cache-Control"] = "no-store"
        if self.tls:
            h["Strict-Transport-Security"] = "max-age=31536000"
        return resp

    async def _audit_request(self, request: web.Request, resp: web.StreamResponse) -> None:
        """Every page shown to an account is an audit row (pages that say more write their
        own); every refusal is counted (Refusals: one row per address a minute at most)."""
        me = request[SESSION].account
        if resp.status in REFUSED:
            kind = request.get(REFUSAL) or REFUSED[resp.status]
            source = self.client_address(request)
            rows = self.refusals.note(source, kind, me.username if me else "", request.path)
            if rows:
                await self._write_rows(rows)
        elif (me is not None and resp.status == 200 and request.method in ("GET", "HEAD")
              and not request.path.startswith("/static/") and not _recorded.get()):  # fmt: skip
            target = request.path + (f"?{request.query_string}" if request.query_string else "")
            await self.record(me, "view", target[:200])

    async def _write_rows(self, rows: list[tuple[str, str, str, str]]) -> None:
        def append(s: Store) -> None:
            with s.transaction():
                for row in rows:
                    self.audit.append(s, *row)

        await self.write(append)

    async def _flush_refusals(self) -> None:
        """Counts of repeated refusals go in once their minute is over, flood or no flood."""
        while True:
            await asyncio.sleep(15)
            rows = self.refusals.flush()
            if rows:
                try:
                    await self._write_rows(rows)
                except Exception:  # the writer's failure is reported by the writer
                    log.warning("console.refusals_not_written rows=%d", len(rows))

    async def _answer(
        self, request: web.Request, handler: Handler, session: Session
    ) -> web.StreamResponse:
        if session.account is not None and not request.path.startswith("/static/"):
            username, stamp = session.account.username, session.account.stamp
            now = await self.read(lambda con: accounts.get(con, username))
            if now is None or now.stamp != stamp:  # disabled, or the password changed since
                log.info("console.session_ended user=%s", username)
                session.account, session.flash = None, [ENDED]  # kept to say why, then dropped
                return web.Response(status=303, headers={"Location": "/login"})
            session.account = now
            if now.can("incidents"):
                await self._load_names()
        if request.method == "POST":
            refused = await self._check_post(request, session)
            if refused is not None:
                return refused
        me = session.account
        if me is None and not request.path.startswith(PUBLIC):
            return web.Response(status=303, headers={"Location": "/login"})
        if me is not None and me.must_change and not request.path.startswith(WHILE_TEMPORARY):
            if request.method not in ("GET", "HEAD"):
                return self.render(
                    request,
                    "error.html",
                    status=403,
                    message="Refused: choose your own password first (Change password).",
                )
            return web.Response(status=303, headers={"Location": "/password"})
        if (me is not None and not me.must_change and me.must_enrol
                and not request.path.startswith(WHILE_ENROLLING)):  # fmt: skip
            if request.method not in ("GET", "HEAD"):
                return self.render(request, "error.html", status=403,
                                   message="Refused: set up two-factor sign-in first.")  # fmt: skip
            return web.Response(status=303, headers={"Location": "/two-factor"})
        try:
            return await handler(request)
        except web.HTTPException as exc:  # redirects and refusals: answer with a response
            return web.Response(status=exc.status, headers=exc.headers, text=exc.text)
        except ODD_INPUT as exc:  # a value no page can use: say so, never a 500
            log.info("console.bad_request path=%s error=%s", request.path, type(exc).__name__)
            return self.render(request, "error.html", status=400, message=(
                "The request had a value the console cannot use (a number too large, a date "
                "that does not exist, ...). Go back and try again."))  # fmt: skip
        except Exception:  # a bug: logged, and answered with the headers like any page
            log.exception("console.error path=%s", request.path)
            return self.render(request, "error.html", status=500,
                               message="Something went wrong; it has been logged.")  # fmt: skip

    async def _check_post(self, request: web.Request, session: Session) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin and origin != "null" and origin.split("://", 1)[-1] != request.host:
            log.warning("console.csrf_refused reason=origin path=%s", request.path)
            request[REFUSAL] = "csrf_origin"
            return web.Response(status=403, text="Refused: this form came from another site.")
        form = await request.post()
        token = form.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf):
            log.warning("console.csrf_refused reason=token path=%s", request.path)
            request[REFUSAL] = "csrf_token"
            return web.Response(
                status=403,
                text="Refused: the form's security token is missing or out of date. "
                "Go back, reload the page and try again.",
            )
        return None

    # -- lifecycle ---------------------------------------------------------------------------
    def _run_loop(self) -> None:
        # Ingest first: when the cores are busy, the scheduler gives this thread what is left
        # (bench/results/console_flood.md). Linux sets the niceness of one thread by its id.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    async def _on_own_loop(self, coro: Awaitable[T]) -> T:
        async def run() -> T:
            return await coro

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), self.loop))

    async def start(self, host: str, port: int) -> int:
        """Open the readers, then serve on the console's own thread and loop."""
        readers = await self.write(lambda s: [s.reader() for _ in range(READERS)])
        for con in readers:
            self._readers.put(con)
        self._thread.start()
        return await self._on_own_loop(self._serve(host, port))

    async def _serve(self, host: str, port: int) -> int:
        self.runner = web.AppRunner(self.build(), access_log=None)
        await self.runner.setup()
        ctx = None
        if self.tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(self.data.server_cert, self.data.server_key)
        site = web.TCPSite(self.runner, host, port, ssl_context=ctx)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        self._flusher = asyncio.get_running_loop().create_task(self._flush_refusals())
        log.info("console.started host=%s port=%d tls=%s", host, self.port, self.tls)
        return self.port

    async def stop(self) -> None:
        if self._thread.is_alive():
            if self._flusher is not None:
                self.loop.call_soon_threadsafe(self._flusher.cancel)
            if self.runner is not None:
                await self._on_own_loop(self.runner.cleanup())
            self.loop.call_soon_threadsafe(self.loop.stop)
            await asyncio.to_thread(self._thread.join, 30)
        else:
            self.loop.close()
        self.pool.shutdown(wait=True)
        while not self._readers.empty():
            self._readers.get().close()
