"""The whole system, as a school uses it: a pupil types a grooming phrase (with an evasion) on a
real X desktop, the agent detects and ships it, the collector makes it a candidate, and the DSL,
in real headless chromium, reviews it, verifies the evidence, closes it with an outcome and
downloads the CPOMS record."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.e2e.agent.desktop import AgentProcesses, Desktop
from tests.e2e.console.test_console_browser import CHROMIUM_ARGS, Served, otpauth_secret
from tests.integration.console.support import PASSWORD
from tests.processes import run

pytestmark = pytest.mark.e2e


def wait_for(check, timeout: float = 90.0, what: str = "") -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


@pytest.fixture
def school(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    data = tmp_path / "collector"
    run("safeguard-collector", "init", "--data", data, "--name", "127.0.0.1")
    made = run("safeguard-collector", "user", "add", "dana", "--data", data, "--role", "dsl",
               "--name", "Dana Lead", "--password-file", "-", "--no-must-change",
               stdin=PASSWORD + "\n").stdout  # fmt: skip -- first login: test_accounts_browser
    served = Served(data)
    served.secrets["dana"] = otpauth_secret(made)
    try:
        yield served, tmp_path
    finally:
        served.stop()


def test_a_phrase_typed_by_a_pupil_becomes_a_closed_incident_with_its_cpoms_record(
    school: tuple[Served, Path],
) -> None:
    for tool in ("Xvfb", "xdotool", "xterm", "chromium", "pdftotext"):
        require_tool(tool)
    from playwright.sync_api import expect, sync_playwright

    served, tmp = school
    state = tmp / "agent"
    token = run("safeguard-collector", "token", "--data", served.data).stdout
    run("safeguard-agent", "enroll", "--state", state, "--collector", served.address,
        "--token-file", "-", "--ca", served.data / "ca.pem", stdin=token)
    desktop = Desktop(tmp / "desktop")
    agent = AgentProcesses(state, desktop, tmp / "work", log_level="info")
    try:
        desktop.window("homework")
        desktop.focus("homework")

        def candidates() -> list[dict]:  # type: ignore[type-arg]
            out = run("safeguard-collector", "incidents", "--data", served.data,
                      "--format", "json").stdout
            return [r for r in json.loads(out)["rows"] if r["category"] == "grooming"]

        # The helper may still be connecting: type again until the detection lands.
        def typed_and_found() -> list[dict]:  # type: ignore[type-arg]
            desktop.type("he said it is 0ur l1ttle s3cret ok\n")
            return wait_for_quietly(candidates)

        wait_for(typed_and_found, timeout=120, what="a grooming candidate")
    finally:
        agent.stop()
        desktop.close()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(served.url + "/")
            page.fill("input[name=username]", "dana")
            page.fill("input[name=password]", PASSWORD)
            page.fill("input[name=code]", served.code("dana"))
            page.click("button:has-text('Log in')")
            expect(page.locator("h1")).to_contain_text("Needs attention")  # the DSL's day
            page.click("nav a:has-text('Incidents')")
            row = page.locator("tr", has_text="grooming")
            expect(row.first).to_be_visible()
            row.first.locator("a").first.click()
            expect(page.locator("h1")).to_contain_text("grooming")
            page.click("button:has-text('Start review')")
            page.click("button:has-text('Verify evidence')")
            expect(page.locator(".verify")).to_contain_text("Evidence verified")
            page.select_option("select[name=outcome]", "handled_in_school")
            page.fill("textarea[name=note]", "Spoke with the pupil and parents.")
            page.click("button:has-text('Record outcome')")
            expect(page.locator(".status")).to_contain_text("Closed")
            with page.expect_download() as dl:
                page.click("a:has-text('PDF')")
            pdf = tmp / "record.pdf"
            dl.value.save_as(pdf)
        finally:
            browser.close()
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for expected in ("Safeguarding incident record", "0ur l1ttle s3cret", "grooming",
                     "Evidence verified", "Spoke with the pupil"):
        assert expected in text, expected


def wait_for_quietly(check, timeout: float = 5.0) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    return None
