"""Saved filters by keyboard alone in real headless Chromium: name the list's filters and save
them (typing letters the triage shortcuts use), follow the saved link, delete it; Tab, typing
and Enter only, at desktop and phone widths."""

from __future__ import annotations

import pytest

from tests.conftest import require_tool
from tests.e2e.console.test_console_browser import CHROMIUM_ARGS, Served
from tests.e2e.console.test_console_browser import served as served
from tests.e2e.console.test_keyboard_journey import sign_in_by_keyboard, tab_to

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("width", [1280, 390])
def test_save_follow_and_delete_a_filter_by_keyboard(served: Served, width: int) -> None:
    require_tool("chromium")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 860})
            sign_in_by_keyboard(page, served, "dana")
            expect(page.locator("h1")).to_contain_text("Needs attention")
            page.goto(served.url + "/incidents?status=&severity=3")
            tab_to(page, "e.name === 'name' && e.closest('.saved-filters')", "the filter's name")
            page.keyboard.type("jkorc? all severe")  # the shortcut keys, typed into the field
            page.keyboard.press("Enter")
            saved = page.locator(".saved-filters a", has_text="jkorc? all severe")
            expect(saved).to_have_attribute("href", "/incidents?status=&severity=3")
            page.goto(served.url + "/incidents")
            tab_to(page, "e.textContent === 'jkorc? all severe'", "the saved filter's link")
            page.keyboard.press("Enter")
            page.wait_for_url("**/incidents?status=&severity=3")
            tab_to(page, "e.tagName === 'BUTTON' && e.textContent.includes('saved filter jkorc')",
                   "its Delete button")  # fmt: skip
            page.keyboard.press("Enter")
            expect(page.locator(".flash")).to_contain_text("Deleted the saved filter")
            expect(page.locator(".saved-filters a")).to_have_count(0)
        finally:
            browser.close()
