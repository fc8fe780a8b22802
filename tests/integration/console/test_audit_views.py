"""Every page view is an audit row, and so is every refusal (a page the role may not see, a
form without its token, a throttled login), counted per address per minute so a flood of them
cannot flood the log (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest

from collector.integrity import audit
from tests.integration.console.support import PASSWORD, Client, ConsoleHarness

pytestmark = pytest.mark.integration


def rows(console: ConsoleHarness) -> list[dict[str, Any]]:
    return console.with_store(lambda s: audit.read(s.con, 1000))[::-1]


def test_the_agents_exemptions_and_settings_pages_are_recorded(console: ConsoleHarness) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    for path in ("/agents", "/exemptions", "/settings"):
        assert dsl.get(path)[0] == 200
    seen = [(r["actor"], r["action"], r["target"]) for r in rows(console)]
    for path in ("/agents", "/exemptions", "/settings"):
        assert ("dsl", "view", path) in seen, path
    assert console.with_store(lambda s: audit.Audit(audit.load_key(console.data)).verify(s.con)).ok


def test_refused_pages_are_recorded_without_flooding_the_log(console: ConsoleHarness) -> None:
    tech = Client(console.url)
    tech.login("tech")
    for _ in range(30):
        assert tech.get("/incidents")[0] == 403
    refused = [r for r in rows(console) if r["action"] == "refused"]
    # The first this minute is written with who and what; the rest are counted, and their
    # count is written when the minute is over (at most one more row if it turned meanwhile).
    assert 1 <= len(refused) <= 2
    assert refused[0]["actor"] == "tech" and refused[0]["target"] == "/incidents"
    assert refused[0]["detail"] == "kind=forbidden addr=127.0.0.1"


def test_a_form_without_its_token_is_recorded(console: ConsoleHarness) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    assert dsl.post("/logout", {}, csrf=False)[0] == 403
    [refused] = [r for r in rows(console) if r["action"] == "refused"]
    assert refused["actor"] == "dsl" and refused["detail"] == "kind=csrf_token addr=127.0.0.1"


def test_a_throttled_login_is_recorded(console: ConsoleHarness) -> None:
    c = Client(console.url)
    for _ in range(5):
        assert c.login("gov", "wrong password guess")[0] == 401
    assert c.login("gov", "wrong password guess")[0] == 429
    [refused] = [r for r in rows(console) if r["action"] == "refused"]
    assert refused["target"] == "/login" and refused["detail"] == "kind=throttled addr=127.0.0.1"


def test_replacing_a_second_factor_needs_the_password(console: ConsoleHarness) -> None:
    """A session left open is not enough to put someone else's phone on the DSL's account."""
    import re

    from collector import two_factor

    dsl = Client(console.url)
    dsl.login("dsl")
    page = dsl.get("/two-factor")[1]
    m = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
    assert m and 'name="password"' in page
    code = two_factor.current_code(m.group(1))
    status, page = dsl.post("/two-factor", {"code": code, "password": "not my password"})
    assert status == 400 and "password is not right" in page
    status, page = dsl.post("/two-factor", {"code": code, "password": PASSWORD})
    assert status == 200 and "Two-factor sign-in is set up" in page
