"""Accounts in the console: a temporary password confines its owner to choosing their own;
changing it ends their other sessions; the DSL and head add, reset and disable accounts (a new
or reset password shown once), no one else may; nobody disables themselves or the last DSL;
every step is audited and no password reaches the audit log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector import cli
from collector.integrity import audit
from tests.integration.console.support import PASSWORD, Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration
NEW = "a long password of my own 42"
_TEMPORARY = re.compile(r'id="temporary-password">([^<]+)<')


def users(console: ConsoleHarness) -> dict[str, dict[str, object]]:
    return {r["username"]: r for r in console.op("user_list")}


def audit_rows(console: ConsoleHarness) -> list[dict[str, object]]:
    return console.with_store(lambda s: audit.read(s.con, 10_000))


def temporary(page: str) -> str:
    found = _TEMPORARY.search(page)
    assert found, page
    return found.group(1)


@pytest.fixture
def incident(console: ConsoleHarness) -> int:
    Agent.enrol(console).ship(keyword("grooming", ["our secret"], account="pupil.cara"))
    [row] = console.op("incidents")["rows"]
    return int(row["id"])


def test_a_temporary_password_leads_only_to_changing_it(
    console: ConsoleHarness, incident: int
) -> None:
    console.add_user("newdsl", "dsl", "New Lead", must_change=True)
    c = Client(console.url)
    status, page = c.login("newdsl")
    assert status == 200 and "<h1>Change password</h1>" in page and "set by someone else" in page
    assert 'href="/incidents"' not in page  # no way on from here but changing it
    for path in ("/", "/incidents", f"/incidents/{incident}", "/accounts", "/audit", "/login"):
        assert c.peek(path) == (303, "/password"), path
    # Forms are refused, even with a good CSRF token, until the password is the owner's own.
    status, page = c.post(f"/incidents/{incident}/status", {"status": "in_review"})
    assert status == 403 and "choose your own password first" in page
    status, _ = c.post("/accounts", {"username": "sneaky", "role": "dsl"})
    assert status == 403
    assert console.op("incidents")["rows"][0]["status"] == "new"
    assert "sneaky" not in users(console)

    status, page = c.post("/password", {"current": PASSWORD, "new": NEW, "again": NEW})
    assert status == 200 and "<h1>Needs attention</h1>" in page
    assert "Your password is changed" in page
    assert users(console)["newdsl"]["must_change_password"] is False
    assert c.peek("/incidents") == (200, "")
    assert c.post(f"/incidents/{incident}/status", {"status": "in_review"})[0] == 200
    assert console.op("incidents")["rows"][0]["status"] == "in_review"
    # The old password no longer logs in; the new one does, straight to the DSL's day.
    assert Client(console.url).login("newdsl")[0] == 401
    status, page = Client(console.url).login("newdsl", NEW)
    assert status == 200 and "<h1>Needs attention</h1>" in page


def test_changing_a_password_ends_the_other_sessions_and_follows_the_rules(
    console: ConsoleHarness,
) -> None:
    here, elsewhere = Client(console.url), Client(console.url)
    here.login("deputy")
    elsewhere.login("deputy")
    assert elsewhere.peek("/incidents") == (200, "")
    for form, why in (
        ({"current": "not my password", "new": NEW, "again": NEW}, "current password is not"),
        ({"current": PASSWORD, "new": NEW, "again": NEW + "x"}, "not the same"),
        ({"current": PASSWORD, "new": "short one", "again": "short one"}, "at least 12"),
        ({"current": PASSWORD, "new": PASSWORD, "again": PASSWORD}, "not the one you have"),
    ):
        status, page = here.post("/password", form)
        assert status == 400 and why in page, why
    assert elsewhere.peek("/incidents") == (200, "")  # nothing changed yet
    status, page = here.post("/password", {"current": PASSWORD, "new": NEW, "again": NEW})
    assert status == 200 and "1 other session(s) of yours were logged out" in page
    assert here.peek("/incidents") == (200, "")
    assert elsewhere.peek("/incidents") == (303, "/login")
    status, page = elsewhere.get("/login")
    assert status == 200 and "session has ended because your password was changed" in page
    assert Client(console.url).login("deputy", NEW)[0] == 200
    actions = [(r["actor"], r["action"]) for r in audit_rows(console)]
    assert ("deputy", "password_changed") in actions
    assert actions.count(("deputy", "password_change_refused")) == 4


def test_a_password_set_from_the_command_line_ends_console_sessions(
    console: ConsoleHarness, tmp_path: Path
) -> None:
    """The CLI reaches the running collector through its admin socket, not the console's
    sessions: the per-request check against the account is what logs the old session out."""
    c = Client(console.url)
    c.login("head")
    (tmp_path / "new").write_text(NEW + "\n")
    (tmp_path / "old").write_text(PASSWORD + "\n")
    data = str(console.data_dir)
    assert console.data.admin_socket.exists()  # so the CLI goes through the running collector
    assert cli.main(["user", "passwd", "head", "--data", data, "--password-file",
                     str(tmp_path / "new")]) == 0  # fmt: skip
    assert c.peek("/incidents") == (303, "/login")
    status, page = c.login("head", NEW)
    assert status == 200 and "<h1>Change password</h1>" in page  # from a file: temporary
    assert users(console)["head"]["must_change_password"] is True
    # Typed at the prompt it would be the owner's own; --no-must-change says so for a file.
    assert cli.main(["user", "passwd", "head", "--data", data, "--password-file",
                     str(tmp_path / "old"), "--no-must-change"]) == 0  # fmt: skip
    assert users(console)["head"]["must_change_password"] is False
    assert users(console)["head"]["two_factor"] is True
    # A head who lost her phone and her recovery codes: the technician clears the second factor
    # with the password, and she sets it up again at her next login.
    reset = ["--no-must-change", "--reset-two-factor"]
    assert cli.main(["user", "passwd", "head", "--data", data, "--password-file",
                     str(tmp_path / "old"), *reset]) == 0  # fmt: skip
    assert users(console)["head"]["two_factor"] is False
    status, page = Client(console.url).login("head", code="")
    assert status == 200 and "<h1>Two-factor sign-in</h1>" in page
    assert any(r["action"] == "password_set" and "two_factor_cleared" in r["detail"]
               for r in audit_rows(console))  # fmt: skip
    assert cli.main(["user", "disable", "tech", "--data", data]) == 0
    tech = Client(console.url)
    assert tech.login("tech")[0] == 401


@pytest.mark.parametrize("who", ["tech", "gov", "deputy"])
def test_only_the_dsl_and_head_reach_accounts(console: ConsoleHarness, who: str) -> None:
    c = Client(console.url)
    c.login(who)
    status, page = c.get("/accounts")
    assert status == 403 and "Hana Head" not in page
    assert c.post("/accounts", {"username": "sneaky", "role": "dsl"})[0] == 403
    assert c.post("/accounts/dsl/reset")[0] == 403
    assert c.post("/accounts/dsl/disable")[0] == 403
    now = users(console)
    assert "sneaky" not in now and now["dsl"]["disabled_ms"] is None
    assert now["dsl"]["must_change_password"] is False
    assert Client(console.url).login("dsl")[0] == 200  # its password untouched
    assert 'href="/accounts"' not in c.get("/password")[1]
    for head in ("dsl", "head"):
        m = Client(console.url)
        m.login(head)
        assert m.get("/accounts")[0] == 200


def test_account_forms_need_the_csrf_token(console: ConsoleHarness) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    status, page = dsl.post("/accounts", {"username": "forged", "role": "dsl"}, csrf=False)
    assert status == 403 and "security token" in page
    assert dsl.post("/accounts/deputy/reset", {"csrf": "guess"}, csrf=False)[0] == 403
    assert dsl.post("/accounts/deputy/disable", csrf=False)[0] == 403
    status, _ = dsl.post(
        "/accounts", {"username": "forged", "role": "dsl"}, headers={"Origin": "https://x.example"}
    )
    assert status == 403
    status, _ = dsl.post("/password", {"current": PASSWORD, "new": NEW, "again": NEW}, csrf=False)
    assert status == 403
    now = users(console)
    assert "forged" not in now and now["deputy"]["disabled_ms"] is None
    assert Client(console.url).login("deputy")[0] == 200


def test_the_dsl_adds_an_account_whose_password_is_shown_once(console: ConsoleHarness) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    status, page = dsl.get("/accounts")
    assert status == 200 and "Hana Head" in page and "Gill Governor" in page
    status, page = dsl.post(
        "/accounts", {"username": "dev.two", "display_name": "Deb Two", "role": "deputy_dsl"}
    )
    assert status == 200 and "Account added" in page and "only time it is shown" in page
    made_page, password = page, temporary(page)
    assert len(password) >= 20
    made = users(console)["dev.two"]
    assert made["role"] == "deputy_dsl" and made["must_change_password"] is True
    _, page = dsl.get("/accounts")
    assert password not in page and "must change password" in page
    # A senior role waits for a second senior: not even the right password signs it in yet...
    assert "A second senior member of staff must approve this account" in made_page
    deb = Client(console.url)
    status, page = deb.login("dev.two", password)
    assert status == 403 and "waits for a second senior member of staff" in page
    assert "awaiting approval" in dsl.get("/accounts")[1]
    # ...and the DSL who added it cannot approve it (no button; the form posted anyway).
    assert "/accounts/dev.two/approve" not in dsl.get("/accounts")[1]
    _, page = dsl.post("/accounts/dev.two/approve")
    assert "dsl made this account" in page.lower()
    head = Client(console.url)
    head.login("head")
    assert "/accounts/dev.two/approve" in head.get("/accounts")[1]
    _, page = head.post("/accounts/dev.two/approve")
    assert "Approved dev.two as Deputy DSL" in page and "approved by head" in page
    status, page = deb.login("dev.two", password)
    assert status == 200 and "<h1>Change password</h1>" in page
    _, page = head.post("/accounts/dev.two/approve")
    assert "not waiting for approval" in page
    # Refusals come back as a message on the Accounts page; nothing is made.
    for form, why in (
        ({"username": "dev.two", "role": "head"}, "already exists"),
        ({"username": "Bad Name", "role": "head"}, "a username is"),
        ({"username": "someone", "role": "caretaker"}, "role must be one of"),
    ):
        status, page = dsl.post("/accounts", form)
        assert status == 200 and why in page.lower(), why
    assert set(users(console)) == {"dsl", "deputy", "head", "tech", "gov", "dev.two"}


def test_a_reset_flags_the_account_and_ends_its_sessions(console: ConsoleHarness) -> None:
    deputy = Client(console.url)
    deputy.login("deputy")
    head = Client(console.url)
    head.login("head")
    status, page = head.post("/accounts/deputy/reset")
    assert status == 200 and "Password reset" in page and "1 open session(s)" in page
    password = temporary(page)
    assert users(console)["deputy"]["two_factor"] is False  # a lost phone is reset too...
    assert deputy.peek("/incidents") == (303, "/login")
    assert Client(console.url).login("deputy", code="")[0] == 401  # the old password is gone
    status, page = deputy.login("deputy", password, code="")
    assert status == 200 and "<h1>Change password</h1>" in page
    assert users(console)["deputy"]["must_change_password"] is True
    status, page = deputy.post("/password", {"current": password, "new": NEW, "again": NEW})
    assert status == 200 and "<h1>Two-factor sign-in</h1>" in page  # ...and set up again
    assert deputy.peek("/incidents") == (303, "/two-factor")
    # Your own password is changed on Change password, not reset here.
    _, page = head.post("/accounts/head/reset")
    assert "use change password" in page.lower()
    assert Client(console.url).login("head")[0] == 200


def test_no_one_disables_themselves_or_the_last_dsl(console: ConsoleHarness) -> None:
    dsl, head = Client(console.url), Client(console.url)
    dsl.login("dsl")
    head.login("head")
    _, page = dsl.post("/accounts/dsl/disable")
    assert "cannot disable your own account" in page
    _, page = head.post("/accounts/dsl/disable")
    assert "last enabled DSL" in page
    assert users(console)["dsl"]["disabled_ms"] is None
    assert dsl.peek("/incidents") == (200, "")
    # With a second DSL, the first may go; their open session ends with the account.
    console.add_user("dsl2", "dsl", "Second Lead", must_change=False)
    _, page = head.post("/accounts/dsl/disable")
    assert "Disabled dsl. 1 open session(s) ended." in page
    assert dsl.peek("/incidents") == (303, "/login")
    assert Client(console.url).login("dsl")[0] == 401
    _, page = head.post("/accounts/dsl2/disable")
    assert "last enabled DSL" in page
    _, page = head.post("/accounts/dsl/disable")
    assert "already disabled" in page
    _, page = head.post("/accounts/dsl/reset")
    assert "no enabled account" in page.lower()
    # A technician can be disabled by the DSL; what the page shows agrees.
    d2 = Client(console.url)
    d2.login("dsl2")
    _, page = d2.post("/accounts/tech/disable")
    assert "Disabled tech." in page
    assert users(console)["tech"]["disabled_ms"] is not None


def test_account_changes_are_audited_without_any_password(console: ConsoleHarness) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    dsl.get("/accounts")
    _, page = dsl.post("/accounts", {"username": "gov2", "display_name": "G2", "role": "governor"})
    first = temporary(page)
    _, page = dsl.post("/accounts/gov2/reset")
    second = temporary(page)
    dsl.post("/accounts/dsl/disable")
    dsl.post("/accounts/gov2/disable")
    gov2 = Client(console.url)
    gov2.login("gov2", second)  # disabled: refused, and audited as a failed login
    dsl.get("/password")
    dsl.post("/password", {"current": PASSWORD, "new": NEW, "again": NEW})
    rows = audit_rows(console)
    mine = [(r["action"], r["target"]) for r in rows if r["actor"] == "dsl"]
    for expected in (
        ("view_accounts", "accounts"),
        ("user_added", "user:gov2"),
        ("password_reset", "user:gov2"),
        ("user_disable_refused", "user:dsl"),
        ("user_disabled", "user:gov2"),
        ("view_password_change", "user:dsl"),
        ("password_changed", "user:dsl"),
    ):
        assert expected in mine, expected
    added = next(r for r in rows if r["action"] == "user_added" and r["target"] == "user:gov2")
    assert added["detail"] == "role=governor temporary"
    text = repr(rows)
    for secret in (PASSWORD, NEW, first, second):
        assert secret not in text
    key = audit.load_key(console.data)
    assert console.with_store(lambda s: audit.Audit(key).verify(s.con)).ok
