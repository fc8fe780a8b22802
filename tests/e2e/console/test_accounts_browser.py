"""First logins in real headless Debian chromium against a real `safeguard-collector serve
--web` process: the DSL, whose password was set from a file (as the installer does) and whose
authenticator was set up from the URI `user add` printed, must choose their own password before
anything else; adds a deputy in the console; the deputy logs in with the temporary password
read off the page, must change it too, then must set up two-factor sign-in from the key the
page shows, is shown recovery codes once, and then sees the incidents; later logs in with a
recovery code instead of the phone."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import two_factor
from tests.conftest import require_tool
from tests.e2e.console.test_console_browser import CHROMIUM_ARGS, Served, otpauth_secret
from tests.integration.console.support import Agent, keyword
from tests.processes import run

pytestmark = pytest.mark.e2e
FIRST = "first-one-time-pass-7x"  # what `safeguard-install collector` would have printed
DANA_OWN = "dana chose this one herself"
DEV_OWN = "a deputy's very own password"
HANA = "the head teacher's own password"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data = tmp_path / "collector"
    run("safeguard-collector", "init", "--data", data, "--name", "127.0.0.1")
    made = run(
        "safeguard-collector", "user", "add", "dana", "--data", data, "--role", "dsl",
        "--name", "Dana Lead", "--password-file", "-", stdin=FIRST + "\n",
    ).stdout  # fmt: skip
    assert "must choose a new password at the next login" in made
    head = run(
        "safeguard-collector", "user", "add", "hana", "--data", data, "--role", "head",
        "--name", "Hana Head", "--password-file", "-", "--no-must-change", stdin=HANA + "\n",
    ).stdout  # fmt: skip
    s = Served(data)
    s.secrets["dana"] = otpauth_secret(made)
    s.secrets["hana"] = otpauth_secret(head)
    try:
        yield s
    finally:
        s.stop()


def _one_candidate(data: Path) -> None:
    for _ in range(200):  # polled: the engine runs after the commit the ack waited for
        out = run("safeguard-collector", "incidents", "--data", data, "--format", "json").stdout
        if json.loads(out)["total"] >= 1:
            return
        time.sleep(0.1)
    raise AssertionError("no candidate appeared")


def test_first_logins_make_each_person_choose_their_own_password(
    served: Served, tmp_path: Path
) -> None:
    require_tool("chromium")
    from playwright.sync_api import expect, sync_playwright

    token = run("safeguard-collector", "token", "--data", served.data).stdout.strip()
    agent = Agent.connect(served.address, served.data / "ca.pem", token)
    agent.ship(keyword("bullying", ["idiot"], account="pupil.ben", context="you are an idiot"))
    _one_candidate(served.data)
    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(served.url + "/")
            page.fill("input[name=username]", "dana")
            page.fill("input[name=password]", FIRST)
            page.fill("input[name=code]", served.code("dana"))
            page.click("button:has-text('Log in')")
            expect(page.locator("h1")).to_have_text("Change password")
            expect(page.locator("main")).to_contain_text("temporary password")
            expect(page.locator("nav")).to_have_count(0)
            page.screenshot(path=str(shots / "first-login.png"), full_page=True)
            page.goto(served.url + "/incidents")  # nothing else is reachable yet
            expect(page).to_have_url(served.url + "/password")
            page.fill("input[name=current]", FIRST)
            page.fill("input[name=new]", DANA_OWN)
            page.fill("input[name=again]", DANA_OWN)
            page.click("main button:has-text('Change password')")
            expect(page.locator("h1")).to_contain_text("Needs attention")
            expect(page.locator(".flash")).to_contain_text("Your password is changed")

            page.click("nav a:has-text('Accounts')")
            expect(page.locator("h1")).to_have_text("Accounts")
            page.screenshot(path=str(shots / "accounts.png"), full_page=True)
            page.fill("input[name=username]", "dev")
            page.fill("input[name=display_name]", "Dev Deputy")
            page.select_option("select[name=role]", "deputy_dsl")
            page.click("button:has-text('Add account')")
            expect(page.locator("h1")).to_have_text("Account added")
            temporary = page.locator("#temporary-password").inner_text().strip()
            assert len(temporary) >= 20
            page.screenshot(path=str(shots / "account-added.png"), full_page=True)
            page.click("button:has-text('Log out')")

            # A deputy is a senior role: it waits for a second senior, here the head teacher.
            expect(page.locator("h1")).to_have_text("Log in")
            page.fill("input[name=username]", "dev")
            page.fill("input[name=password]", temporary)
            page.click("button:has-text('Log in')")
            expect(page.locator(".error")).to_contain_text("waits for a second senior")
            page.fill("input[name=username]", "hana")
            page.fill("input[name=password]", HANA)
            page.fill("input[name=code]", served.code("hana"))
            page.click("button:has-text('Log in')")
            page.click("nav a:has-text('Accounts')")
            page.click("button:has-text('Approve Deputy DSL')")
            expect(page.locator(".flash")).to_contain_text("Approved dev as Deputy DSL")
            page.click("button:has-text('Log out')")

            page.fill("input[name=username]", "dev")
            page.fill("input[name=password]", temporary)
            page.click("button:has-text('Log in')")
            expect(page.locator("h1")).to_have_text("Change password")
            page.fill("input[name=current]", temporary)
            page.fill("input[name=new]", DEV_OWN)
            page.fill("input[name=again]", DEV_OWN)
            page.click("main button:has-text('Change password')")
            # A deputy reaches safeguarding records: a second factor before anything else.
            expect(page.locator("h1")).to_have_text("Two-factor sign-in")
            page.goto(served.url + "/incidents")
            expect(page).to_have_url(served.url + "/two-factor")
            secret = page.locator("#totp-secret").inner_text().strip()
            assert secret in page.locator("#totp-uri").inner_text()
            page.screenshot(path=str(shots / "two-factor.png"), full_page=True)
            page.fill("input[name=code]", "000000" if two_factor.current_code(secret) != "000000"
                      else "111111")  # fmt: skip
            page.click("button:has-text('Confirm')")
            expect(page.locator(".error")).to_contain_text("That code is not right")
            page.fill("input[name=code]", two_factor.current_code(secret))
            page.click("button:has-text('Confirm')")
            expect(page.locator("h1")).to_have_text("Two-factor sign-in is set up")
            recovery = page.locator(".recovery-codes code").all_inner_texts()
            assert len(recovery) == 10
            page.click("a:has-text('continue')")
            expect(page.locator("h1")).to_contain_text("Needs attention")
            page.click("nav a:has-text('Incidents')")
            expect(page.locator("h1")).to_contain_text("Incident candidates")
            expect(page.locator("tr", has_text="pupil.ben")).to_contain_text("bullying")
            expect(page.locator("nav a:has-text('Accounts')")).to_have_count(0)  # a deputy
            page.click("button:has-text('Log out')")

            # The password alone is not enough now; a recovery code works once, in the phone's
            # place.
            page.fill("input[name=username]", "dev")
            page.fill("input[name=password]", DEV_OWN)
            page.click("button:has-text('Log in')")
            expect(page.locator(".error")).to_contain_text("do not match")
            page.fill("input[name=password]", DEV_OWN)
            page.fill("input[name=code]", recovery[0])
            page.click("button:has-text('Log in')")
            expect(page.locator("h1")).to_contain_text("Needs attention")
            expect(page.locator(".flash")).to_contain_text("You used a recovery code; 9 left")
            page.click("button:has-text('Log out')")
            page.fill("input[name=username]", "dev")
            page.fill("input[name=password]", DEV_OWN)
            page.fill("input[name=code]", recovery[0])
            page.click("button:has-text('Log in')")
            expect(page.locator(".error")).to_contain_text("do not match")  # used up
        finally:
            browser.close()

    listed = run("safeguard-collector", "user", "list", "--data", served.data).stdout
    assert [line.split()[:3] for line in listed.splitlines()] == [
        ["dana", "dsl", "active"],
        ["dev", "deputy_dsl", "active"],
        ["hana", "head", "active"],  # who approved the deputy's role
    ]
    audit = run("safeguard-collector", "audit", "--data", served.data).stdout
    assert "audit log verified" in audit
