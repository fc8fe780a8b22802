"""Issue 18's screenshot test in real headless Debian chromium against a real collector: a
detection whose PC sealed a screenshot; a DSL opens the incident, follows its Screenshot link
and sees the picture (decoded by the browser under the console's CSP), and the audit log names
who saw which; a technician who tries the same address is told it is not found."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.e2e.console.test_console_browser import CHROMIUM_ARGS
from tests.integration.console.support import PASSWORD, Agent, ConsoleHarness, keyword
from tests.integration.console.test_screenshots import Shot, audit_rows, incident_of, png

pytestmark = pytest.mark.e2e


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[ConsoleHarness, Any]]:
    require_tool("chromium")
    from playwright.sync_api import sync_playwright

    harness = ConsoleHarness(tmp_path / "collector")
    harness.start()
    try:
        harness.add_staff()
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                yield harness, chromium
            finally:
                chromium.close()
    finally:
        harness.stop()


def sign_in(harness: ConsoleHarness, chromium: Any, username: str) -> Any:
    page = chromium.new_page(viewport={"width": 1280, "height": 860})
    page.goto(harness.url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=code]", harness.phones.code(username))
    page.click("button:has-text('Log in')")
    page.wait_for_url(re.compile(r"/(dashboard|incidents|agents)"))
    return page


def test_a_dsl_sees_the_screenshot_in_chromium_and_a_technician_cannot(
    browser: tuple[ConsoleHarness, Any],
) -> None:
    harness, chromium = browser
    agent = Agent.enrol(harness)
    shot = Shot(harness, agent, image=png(320, 200, (20, 120, 220)))
    shot.ship_event()
    shot.upload()
    agent.ship(keyword("self_harm", ["end it"], context="i just want to end it"))
    iid = incident_of(harness)

    page = sign_in(harness, chromium, "dsl")
    page.goto(f"{harness.url}/incidents/{iid}")
    assert page.locator("text=no screenshot").count() == 1
    page.click("a:has-text('Screenshot')")
    page.wait_for_url(re.compile(rf"/incidents/{iid}/screenshots/{shot.sha}$"))
    img = page.locator("figure.screenshot img")
    img.wait_for()
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())
    size = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [320, 200]  # the browser decoded the very image the PC sealed
    pixel = img.evaluate(
        """i => { const c = document.createElement('canvas'); c.width = 1; c.height = 1;
                  const g = c.getContext('2d'); g.drawImage(i, 0, 0);
                  return Array.from(g.getImageData(0, 0, 1, 1).data).slice(0, 3); }"""
    )
    assert pixel == [20, 120, 220]
    seen = audit_rows(harness, "view_screenshot")
    assert [(who, target) for who, target, _ in seen] == [("dsl", f"incident:{iid}")]
    assert shot.sha in seen[0][2]

    tech = sign_in(harness, chromium, "tech")
    answer = tech.goto(f"{harness.url}/incidents/{iid}/screenshots/{shot.sha}/image")
    assert answer is not None and answer.status == 404
    assert [who for who, _, _ in audit_rows(harness, "refused")] == ["tech"]
    assert len(audit_rows(harness, "view_screenshot")) == 1
