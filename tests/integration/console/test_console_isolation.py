"""The console cannot slow ingest (issue 16): visitors who have not logged in leave no state on
the collector, the session store is bounded, and the console runs on a loop of its own, so even
a console that is stuck leaves agents' batches being acknowledged."""

from __future__ import annotations

import asyncio
import threading
import urllib.request

import pytest

from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword, wait_for

pytestmark = pytest.mark.integration


def test_requests_without_a_cookie_store_nothing(console: ConsoleHarness) -> None:
    web = console.running.web
    assert web is not None
    for _ in range(50):
        for path in ("/", "/login", "/incidents", "/static/console.css"):
            req = urllib.request.Request(console.url + path)  # noqa: S310 -- our console
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                    resp.read()
            except urllib.error.HTTPError as exc:
                exc.read()
    assert len(web.sessions) == 0
    # A login still works (its form token is signed, kept by the browser) and makes one.
    status, page = Client(console.url).login("dsl")
    assert status == 200 and "<h1>Needs attention</h1>" in page
    assert len(web.sessions) == 1


def test_a_form_token_the_console_did_not_sign_is_refused(console: ConsoleHarness) -> None:
    c = Client(console.url)
    c.get("/login")
    forged = "1700000000.abc.0123456789abcdef0123456789abcdef"
    for cookie in c.jar:
        if cookie.name == "sg_form":
            cookie.value = forged
    c.csrf = forged
    status, body = c.post("/login", {"username": "dsl", "password": "x" * 20})
    assert status == 403 and "security token" in body


def test_ingest_goes_on_while_the_console_is_stuck(console: ConsoleHarness) -> None:
    web = console.running.web
    assert web is not None
    agent = Agent.enrol(console)
    release, stuck = threading.Event(), threading.Event()

    async def hold() -> None:  # a handler that blocks its loop, as a slow page would
        stuck.set()
        release.wait(60)

    asyncio.run_coroutine_threadsafe(hold(), web.loop)
    try:
        wait_for(stuck.is_set)
        shipped = threading.Event()

        def ship() -> None:
            agent.ship(keyword("violence", ["fight"]))
            shipped.set()

        threading.Thread(target=ship, daemon=True).start()
        wait_for(shipped.is_set, timeout=30)
    finally:
        release.set()
    assert console.count(agent.agent_id) == 1
