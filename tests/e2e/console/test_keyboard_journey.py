"""Issue 17's "done when", in real headless Chromium: a DSL goes from signing in to the
dashboard, to a child's chronology, to a bulk-closed set of alerts and a referred incident with
the keyboard alone (Tab, Shift+Tab, Space, Enter, arrow keys and typing; no click, no
programmatic focus), on a phone-sized screen as on a desktop."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import require_tool
from tests.e2e.console.test_console_browser import (
    CHROMIUM_ARGS,
    PASSWORD,
    Served,
    _wait_for_candidates,
)
from tests.e2e.console.test_console_browser import served as served
from tests.integration.console.support import Agent, keyword
from tests.processes import run

pytestmark = pytest.mark.e2e
TABS = 200  # no page here has more stops than this


def tab_to(page: Any, test: str, what: str, back: bool = False) -> None:
    """Press Tab (or Shift+Tab) until document.activeElement passes `test` (JS, `e`)."""
    for _ in range(TABS):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        check = f"(() => {{ const e = document.activeElement; return !!(e && ({test})); }})()"
        if page.evaluate(check):
            return
    seen = page.evaluate("(() => { const e = document.activeElement; return e ? "
                         "e.tagName + ' ' + (e.name || '') + ' ' + (e.id || '') : ''; })()")
    raise AssertionError(f"Tab never reached {what} (focus ends on {seen}); the page: "
                         f"{page.locator('main').inner_text()[:1500]}")


def sign_in_by_keyboard(page: Any, served: Served, username: str) -> None:
    """The login form by Tab and typing alone; Enter submits."""
    page.goto(served.url + "/login")
    tab_to(page, "e.name === 'username'", "the username")
    page.keyboard.type(username)
    tab_to(page, "e.name === 'password'", "the password")
    page.keyboard.type(PASSWORD)
    tab_to(page, "e.name === 'code'", "the code")
    page.keyboard.type(served.code(username))
    page.keyboard.press("Enter")


@pytest.mark.parametrize("width", [1280, 390])
def test_from_the_dashboard_to_a_referral_by_keyboard_alone(served: Served, width: int) -> None:
    require_tool("chromium")
    from playwright.sync_api import Page, expect, sync_playwright

    token = run("safeguard-collector", "token", "--data", served.data).stdout.strip()
    agent = Agent.connect(served.address, served.data / "ca.pem", token)
    agent.ship(keyword("grooming", ["send me a pic"], account="pupil.amy", score=40,
                       context="send me a pic of you"))  # fmt: skip
    for pupil in ("pupil.ben", "pupil.cal"):
        agent.ship(keyword("bullying", ["idiot"], account=pupil, context="you idiot"))
    _wait_for_candidates(served.data, 3)

    def choose(page: Page, value: str) -> None:
        """On a focused <select>, arrow down until it holds `value`."""
        for _ in range(30):
            if page.evaluate("document.activeElement.value") == value:
                return
            page.keyboard.press("ArrowDown")
        raise AssertionError(f"no option {value}")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 860})
            sign_in_by_keyboard(page, served, "dana")
            expect(page.locator("h1")).to_contain_text("Needs attention")
            # The severe one is at the top; its pupil's name leads to the chronology.
            tab_to(page, "e.getAttribute('href') === '/pupils/pupil.amy/chronology'",
                   "the pupil's chronology link")  # fmt: skip
            page.keyboard.press("Enter")
            expect(page.locator("h1")).to_contain_text("Chronology")
            expect(page.locator("main")).to_contain_text("Candidate #")
            # To the list, tick the two bullying alerts, close them with one reason.
            tab_to(page, "e.getAttribute('href') === '/incidents'", "Incidents in the menu")
            page.keyboard.press("Enter")
            expect(page.locator("h1")).to_contain_text("Incident candidates")
            ids = page.locator("tr", has_text="bullying").locator("input[name=id]")
            for value in [ids.nth(i).get_attribute("value") for i in range(ids.count())]:
                tab_to(page, f"e.name === 'id' && e.value === '{value}'", f"the box of #{value}")
                page.keyboard.press("Space")
            in_bulk = "e.form && e.form.getAttribute('id') === 'bulk'"  # (form.id is clobbered
            tab_to(page, f"e.name === 'outcome' && {in_bulk}", "the outcome")  # by name="id")
            choose(page, "no_concern")
            tab_to(page, "e.name === 'reason'", "the reason")
            page.keyboard.type("Name-calling dealt with by the class teacher")
            page.keyboard.press("Enter")
            expect(page.locator("main")).to_contain_text("Closed 2 of 2")
            # Open the grooming candidate and refer it.
            in_its_row = "e.closest('tr').textContent.includes('grooming')"
            tab_to(page, f"e.tagName === 'A' && e.closest('tr') && {in_its_row}", "its link")
            page.keyboard.press("Enter")
            expect(page.locator("h1")).to_contain_text("grooming")
            tab_to(page, "e.name === 'outcome'", "the outcome")
            choose(page, "referred_police")
            tab_to(page, "e.tagName === 'BUTTON' && e.textContent.includes('Record outcome')",
                   "Record outcome")  # fmt: skip
            page.keyboard.press("Enter")
            expect(page.locator("main")).to_contain_text("Referral recorded as made")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            browser.close()
