"""The DSL's journey in real headless Debian chromium against a real `safeguard-collector serve
--web` process: log in, triage, record a two-person referral, export the CPOMS record."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.console.support import PASSWORD, Agent, keyword, url
from tests.processes import BIN, run

pytestmark = pytest.mark.e2e
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Served:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.proc = subprocess.Popen(
            [
                str(BIN / "safeguard-collector"),
                "serve",
                "--data",
                str(data),
                "--listen",
                "127.0.0.1:0",
                "--web",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        grpc_line, web_line = self.proc.stdout.readline(), self.proc.stdout.readline()
        grpc_port = re.search(r"127\.0\.0\.1:(\d+)", grpc_line)
        web = re.search(r"console: (http://127\.0\.0\.1:\d+)/", web_line)
        if not (grpc_port and web):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"collector did not start: {grpc_line!r} {web_line!r} {err}")
        self.address = f"127.0.0.1:{grpc_port.group(1)}"
        self.url = web.group(1)
        self.secrets: dict[str, str] = {}  # each person's authenticator app

    def code(self, username: str) -> str:
        from collector import two_factor

        return two_factor.current_code(self.secrets[username])

    def stop(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(60) == 0
        for s in (self.proc.stdout, self.proc.stderr):
            if s:
                s.close()


def otpauth_secret(printed: str) -> str:
    """The secret in the otpauth URI `safeguard-collector user add` prints once."""
    m = re.search(r"otpauth URI: (otpauth://\S+)", printed)
    assert m, printed
    return urllib.parse.parse_qs(urllib.parse.urlsplit(m.group(1)).query)["secret"][0]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data = tmp_path / "collector"
    run("safeguard-collector", "init", "--data", data, "--name", "127.0.0.1")
    secrets = {}
    for user, role, name in (("dana", "dsl", "Dana Lead"), ("hana", "head", "Hana Head")):
        secrets[user] = otpauth_secret(run(
            "safeguard-collector",
            "user",
            "add",
            user,
            "--data",
            data,
            "--role",
            role,
            "--name",
            name,
            "--password-file",
            "-",
            "--no-must-change",  # chosen by them; first login: test_accounts_browser.py
            stdin=PASSWORD + "\n",
        ).stdout)
    s = Served(data)
    s.secrets.update(secrets)
    try:
        yield s
    finally:
        s.stop()


def _wait_for_candidates(data: Path, n: int) -> None:
    import json
    import time

    for _ in range(200):
        out = run("safeguard-collector", "incidents", "--data", data, "--format", "json").stdout
        if json.loads(out)["total"] >= n:
            return
        time.sleep(0.1)
    raise AssertionError("no candidate appeared")


def test_dsl_triages_refers_with_a_second_person_and_exports(
    served: Served, tmp_path: Path
) -> None:
    require_tool("chromium")
    require_tool("pdftotext")
    from playwright.sync_api import expect, sync_playwright

    token = run("safeguard-collector", "token", "--data", served.data).stdout.strip()
    agent = Agent.connect(served.address, served.data / "ca.pem", token)
    agent.ship(url("extremism", "https://extreme.example/recruit"))
    agent.ship(
        keyword(
            "extremism", ["join them"], context="how do i join them online", source="search:google"
        )
    )
    agent.ship(keyword("bullying", ["idiot"], account="pupil.ben", context="you are an idiot"))
    _wait_for_candidates(served.data, 2)
    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, accept_downloads=True)
            page.goto(served.url + "/")
            page.fill("input[name=username]", "dana")
            page.fill("input[name=password]", PASSWORD)
            page.fill("input[name=code]", served.code("dana"))
            page.click("button:has-text('Log in')")
            expect(page.locator("h1")).to_contain_text("Needs attention")  # the DSL's day
            page.click("nav a:has-text('Incidents')")
            expect(page.locator("h1")).to_contain_text("Incident candidates")
            row = page.locator("tr", has_text="pupil.amy")
            expect(row).to_contain_text("extremism")
            expect(row).to_contain_text("escalated")
            page.screenshot(path=str(shots / "triage.png"), full_page=True)

            row.locator("a").first.click()
            expect(page.locator("h1")).to_contain_text("extremism")
            page.click("button:has-text('Start review')")
            expect(page.locator(".status")).to_contain_text("In review")
            page.click("button:has-text('Verify evidence')")
            expect(page.locator(".verify")).to_contain_text("Evidence verified: all 2 events")
            page.fill("textarea[name=text]", "Call parents")
            page.fill("input[name=due]", "2099-01-31")
            page.click("button:has-text('Add')")
            page.select_option("select[name=outcome]", "referred_prevent")
            page.fill("textarea[name=note]", "Referred to the Prevent lead.")
            # A follow-up is open: closing now needs a reason (without one the referral is
            # made and the incident stays open).
            page.fill("textarea[name=open_reason]", "The Prevent lead calls the parents.")
            page.click("button:has-text('Record outcome')")
            expect(page.locator(".ref-box")).to_contain_text("Waiting for someone else")
            page.screenshot(path=str(shots / "incident.png"), full_page=True)
            incident_url = page.url
            page.click("button:has-text('Log out')")

            page.fill("input[name=username]", "hana")
            page.fill("input[name=password]", PASSWORD)
            page.fill("input[name=code]", served.code("hana"))
            page.click("button:has-text('Log in')")
            page.goto(incident_url)
            page.click("button:has-text('Confirm referral')")
            expect(page.locator(".status")).to_contain_text("Closed")
            expect(page.locator("dl.form").first).to_contain_text("Referred: Prevent/Channel")
            with page.expect_download() as dl:
                page.click("a:has-text('PDF')")
            pdf = tmp_path / "incident.pdf"
            dl.value.save_as(pdf)
        finally:
            browser.close()

    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for expected in (
        "Safeguarding incident record",
        "pupil.amy",
        "Referred: Prevent/Channel",
        "how do i join them online",
        "Evidence verified",
        "Call parents",
        "confirmed by hana",
        "Exported by Hana Head",
    ):
        assert expected in text, expected
    audit = run("safeguard-collector", "audit", "--data", served.data).stdout
    assert "audit log verified" in audit


def test_dsl_triages_by_keyboard_alone(served: Served) -> None:
    """Open the first candidate, start its review and go on to the next with keys only; the
    shortcuts stay quiet while the DSL types in a field, and ? shows their list."""
    require_tool("chromium")
    from playwright.sync_api import expect, sync_playwright

    token = run("safeguard-collector", "token", "--data", served.data).stdout.strip()
    agent = Agent.connect(served.address, served.data / "ca.pem", token)
    agent.ship(keyword("self_harm", ["cut myself"], account="pupil.amy", context="cut myself"))
    agent.ship(keyword("bullying", ["idiot"], account="pupil.ben", context="you are an idiot"))
    _wait_for_candidates(served.data, 2)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(served.url + "/")
            page.fill("input[name=username]", "dana")
            page.fill("input[name=password]", PASSWORD)
            page.fill("input[name=code]", served.code("dana"))
            page.click("button:has-text('Log in')")
            expect(page.locator("h1")).to_contain_text("Needs attention")
            page.goto(served.url + "/incidents")
            expect(page.locator("h1")).to_contain_text("Incident candidates")
            # Typing j in a field moves nothing.
            page.fill("input[name=pupil]", "")
            page.press("input[name=pupil]", "j")
            expect(page.locator("input[name=pupil]")).to_have_value("j")
            expect(page.locator("tr.chosen")).to_have_count(0)
            page.fill("input[name=pupil]", "")
            page.locator("main").focus()
            page.keyboard.press("?")
            expect(page.locator("details#shortcuts")).to_have_attribute("open", "")
            page.keyboard.press("?")
            page.keyboard.press("j")
            expect(page.locator("tr.chosen")).to_contain_text("pupil.amy")  # most severe first
            page.keyboard.press("o")
            expect(page.locator("h1")).to_contain_text("self harm")
            expect(page.locator(".status")).to_contain_text("New")
            page.keyboard.press("r")
            expect(page.locator(".status")).to_contain_text("In review")
            page.keyboard.press("c")
            expect(page.locator("select[name=outcome]")).to_be_focused()
            page.locator("main").focus()
            page.keyboard.press("j")
            expect(page.locator("h1")).to_contain_text("bullying")
            page.keyboard.press("k")
            expect(page.locator("h1")).to_contain_text("self harm")
            assert not [e for e in errors if "Content Security Policy" in e], errors
        finally:
            browser.close()
