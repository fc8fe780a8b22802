"""What must not happen: forged forms, guessed passwords, names before governors, incident
content before the technician, an unrecorded view, an edited audit row that goes unnoticed."""

from __future__ import annotations

import re

import pytest

from collector.integrity import audit
from collector.storage.store import Store
from tests.integration.console.support import (
    PASSWORD,
    Agent,
    Client,
    ConsoleHarness,
    keyword,
    usb,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def incident(console: ConsoleHarness) -> int:
    agent = Agent.enrol(console)
    agent.ship(
        keyword("grooming", ["our secret"], account="pupil.cara", context="keep this our secret ok")
    )
    [row] = console.op("incidents")["rows"]
    return int(row["id"])


def test_a_form_without_its_csrf_token_is_refused(console: ConsoleHarness, incident: int) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    status, body = dsl.post(f"/incidents/{incident}/status", {"status": "in_review"}, csrf=False)
    assert status == 403 and "security token" in body
    status, _ = dsl.post(
        f"/incidents/{incident}/status", {"status": "in_review", "csrf": "x"}, csrf=False
    )
    assert status == 403
    # A form posted from another site is refused even with a token.
    status, _ = dsl.post(
        f"/incidents/{incident}/status",
        {"status": "in_review"},
        headers={"Origin": "https://evil.example"},
    )
    assert status == 403
    [row] = console.op("incidents")["rows"]
    assert row["status"] == "new"
    # Logging in needs the token too (no login CSRF).
    fresh = Client(console.url)
    status, _ = fresh.post("/login", {"username": "dsl", "password": "x" * 20}, csrf=False)
    assert status == 403


def test_repeated_wrong_passwords_are_slowed_but_not_the_dsl_with_a_code(
    console: ConsoleHarness,
) -> None:
    c = Client(console.url)
    for _ in range(5):
        status, body = c.login("dsl", "wrong password guess")
        assert status == 401 and "do not match" in body
    status, body = c.login("dsl", "wrong password guess")
    assert status == 429 and "Too many failed attempts" in body
    # While it waits, the right password alone is refused: guessing gains nothing...
    assert c.login("dsl", code="")[0] == 429
    assert c.login("dsl", code="123456")[0] == 429
    # ...but the DSL's second factor is not held back by what others did from this address
    # (behind a proxy, everyone's): password and a fresh code still log in.
    status, page = c.login("dsl")
    assert status == 200 and "<h1>Needs attention</h1>" in page
    entries = console.with_store(lambda s: audit.read(s.con, 50))
    assert sum(1 for e in entries if e["action"] == "login_failed") == 5
    [login] = [e for e in entries if e["action"] == "login"]
    assert "past_throttle" in login["detail"] and "second_factor=totp" in login["detail"]


def test_a_code_is_taken_once(console: ConsoleHarness) -> None:
    code = console.phones.code("head")
    assert Client(console.url).login("head", code=code)[0] == 200
    status, body = Client(console.url).login("head", code=code)  # seen over a shoulder
    assert status == 401 and "do not match" in body


def test_a_governor_sees_counts_but_no_names(console: ConsoleHarness, incident: int) -> None:
    gov = Client(console.url)
    status, page = gov.login("gov")
    assert status == 200 and "Governors' summary" in page
    assert "grooming" in page  # the category is counted...
    assert "<td>fewer than 3</td>" in page and "<td>1</td>" not in page  # ...but not as "1"
    # Nor in the weekly chart, whose bars would add up to what the tables hide.
    import datetime as dt

    from collector.reporting import reports

    r = console.with_store(lambda s: reports.governors(s.con, 12, dt.date.today()))
    assert [n for _, n in r["per_week"]] == [0] * 12
    assert [label for label, _ in r["per_week"]][-1].endswith("*")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    agent_host = console.op("agents")[0]["hostname"]
    for secret in ("pupil.cara", "our secret", "keep this", agent_host, "ag-"):
        assert secret not in text
    assert gov.get(f"/incidents/{incident}")[0] == 403
    assert gov.get("/incidents")[0] == 403
    assert gov.get(f"/incidents/{incident}/export.pdf")[0] == 403
    assert gov.get("/audit")[0] == 403


def test_a_technician_sees_agents_but_no_incident_content(
    console: ConsoleHarness, incident: int
) -> None:
    tech = Client(console.url)
    status, page = tech.login("tech")
    assert status == 200 and "Agents" in page and "reporting" in page
    for secret in ("pupil.cara", "our secret", "grooming"):
        assert secret not in page
    for path in (
        f"/incidents/{incident}",
        "/incidents",
        f"/incidents/{incident}/export.json",
        "/audit",
        "/reports/weekly",
    ):
        status, body = tech.get(path)
        assert status == 403 and "pupil.cara" not in body
    assert tech.post(f"/incidents/{incident}/status", {"status": "in_review"})[0] == 403


def test_every_view_and_action_leaves_an_audit_entry(
    console: ConsoleHarness, incident: int
) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    dsl.get("/incidents")
    dsl.get(f"/incidents/{incident}")
    dsl.get(f"/incidents/{incident}")
    dsl.post(f"/incidents/{incident}/note", {"text": "Checked with class teacher"})
    dsl.get_bytes(f"/incidents/{incident}/export.csv")
    entries = console.with_store(lambda s: audit.read(s.con, 100))
    mine = [(e["action"], e["target"]) for e in entries if e["actor"] == "dsl"][::-1]
    target = f"incident:{incident}"
    assert mine[0] == ("login", "console")
    assert mine.count(("view", target)) >= 3  # two views, and the page after the note
    assert ("note", target) in mine and ("export", target) in mine
    assert ("view_list", "incidents") in mine


def test_the_audit_chain_detects_an_edited_row(console: ConsoleHarness, incident: int) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    dsl.get(f"/incidents/{incident}")
    _, page = dsl.get("/audit")
    assert "Chain verified" in page

    def tamper(store: Store) -> None:
        store.con.execute(
            "UPDATE audit SET actor = 'someone-else' WHERE action = 'view' AND target = ?",
            [f"incident:{incident}"],
        )

    console.with_store(tamper)
    _, page = dsl.get("/audit")
    assert "Chain BROKEN at entry" in page and "changed after it was written" in page
    seq = int(re.search(r"BROKEN at entry (\d+)", page).group(1))  # type: ignore[union-attr]
    key = audit.load_key(console.data)
    check = console.with_store(lambda s: audit.Audit(key).verify(s.con))
    assert not check.ok and check.first_bad == seq
    # Deleting a row is caught too.
    console.with_store(lambda s: s.con.execute("DELETE FROM audit WHERE seq = 2"))
    check = console.with_store(lambda s: audit.Audit(key).verify(s.con))
    assert not check.ok and check.first_bad is not None and check.first_bad <= 3


def test_a_referral_is_made_at_once_and_needs_a_second_senior_person(
    console: ConsoleHarness, incident: int
) -> None:
    from collector import accounts
    from collector.incidents import triage

    # Made before the referral by the DSL herself (a deputy account for a colleague).
    console.with_store(lambda s: accounts.add(
        s, "own.deputy", "Her Deputy", "deputy_dsl", PASSWORD, must_change=False, created_by="dsl"
    ))  # fmt: skip
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.post(f"/incidents/{incident}/outcome", {"outcome": "referred_lado", "note": ""})
    assert "Referral recorded as made" in page  # never held back waiting for anyone
    [row] = console.op("incidents", status="closed")["rows"]
    assert row["outcome"] == "referred_lado"
    rid = int(re.search(r"/referrals/(\d+)/withdraw", page).group(1))  # type: ignore[union-attr]
    assert "Confirm referral" not in page
    # The same person cannot confirm their own referral, even by posting the form directly.
    _, page = dsl.post(f"/incidents/{incident}/referrals/{rid}/confirm")
    assert "someone else must confirm" in page
    # A technician is not senior staff.
    tech = Client(console.url)
    tech.login("tech")
    assert tech.post(f"/incidents/{incident}/referrals/{rid}/confirm")[0] == 403
    # Nor is an account the DSL made, nor one made after the referral (her second login).
    console.add_user("late.deputy", "deputy_dsl", must_change=False)

    def confirm_as(username: str) -> str:
        def run(s: Store) -> str:
            who = accounts.get(s.con, username)
            assert who is not None
            try:
                triage.confirm_referral(s, audit.Audit(audit.load_key(console.data)), who, rid)
            except triage.TriageError as exc:
                return str(exc)
            return "confirmed"

        return console.with_store(run)

    assert "dsl made this account" in confirm_as("own.deputy")
    assert "an account made after the referral cannot confirm it" in confirm_as("late.deputy")
    deputy = Client(console.url)
    deputy.login("deputy")
    _, page = deputy.post(f"/incidents/{incident}/referrals/{rid}/confirm")
    assert "confirmed by a second senior member of staff" in page
    assert "Referred: LADO" in page and "Closed" in page


def test_one_dsl_cannot_make_herself_the_second_person_through_the_console(
    console: ConsoleHarness, incident: int
) -> None:
    """The attack as a tester ran it: the DSL refers, adds a deputy account, signs in as it and
    confirms. The new account cannot sign in until a second senior approves its role, and one
    approved after the referral cannot confirm it."""
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.post(f"/incidents/{incident}/outcome", {"outcome": "referred_lado", "note": ""})
    rid = int(re.search(r"/referrals/(\d+)/withdraw", page).group(1))  # type: ignore[union-attr]
    _, page = dsl.post("/accounts", {"username": "my.deputy", "role": "deputy_dsl"})
    password = re.search(r'id="temporary-password">([^<]+)<', page).group(1)  # type: ignore[union-attr]
    me_again = Client(console.url)
    status, page = me_again.login("my.deputy", password, code="")
    assert status == 403 and "waits for a second senior member of staff" in page
    _, page = me_again.post(f"/incidents/{incident}/referrals/{rid}/confirm")
    assert "confirmed by a second" not in page and "<h1>Log in</h1>" in page
    head = Client(console.url)
    head.login("head")
    head.post("/accounts/my.deputy/approve")  # the head approves the role, after the referral
    status, page = me_again.login("my.deputy", password, code="")
    assert status == 200
    error = console.with_store(lambda s: _confirm(console, s, "my.deputy", rid))
    assert "given its senior role after the referral" in error
    refused = console.with_store(lambda s: s.con.execute(
        "SELECT detail FROM audit WHERE action = 'login_refused'").fetchall())  # fmt: skip
    assert refused and "awaiting_approval" in refused[0][0]


def _confirm(console: ConsoleHarness, s: Store, username: str, rid: int) -> str:
    from collector import accounts
    from collector.incidents import triage

    s.con.execute("UPDATE accounts SET must_change_password = false WHERE username = ?",
                  [username])  # fmt: skip
    who = accounts.get(s.con, username)
    assert who is not None
    try:
        triage.confirm_referral(s, audit.Audit(audit.load_key(console.data)), who, rid)
    except triage.TriageError as exc:
        return str(exc)
    return "confirmed"


def test_a_school_with_one_dsl_confirms_with_the_head(
    console: ConsoleHarness, incident: int
) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.post(f"/incidents/{incident}/outcome", {"outcome": "referred_police",
                                                          "note": "999 called"})  # fmt: skip
    rid = int(re.search(r"/referrals/(\d+)/withdraw", page).group(1))  # type: ignore[union-attr]
    head = Client(console.url)
    head.login("head")
    _, page = head.post(f"/incidents/{incident}/referrals/{rid}/confirm")
    assert "confirmed by a second senior member of staff" in page


def test_blocked_usb_becomes_a_candidate(console: ConsoleHarness) -> None:
    from protos import events_pb2

    agent = Agent.enrol(console)
    agent.ship(usb(events_pb2.UsbDecision.INSERTED_ALLOWED), usb(events_pb2.UsbDecision.REMOVED))
    assert console.op("incidents")["total"] == 0
    agent.ship(usb(events_pb2.UsbDecision.INSERTED_BLOCKED))
    [row] = console.op("incidents")["rows"]
    assert row["kind"] == "usb" and row["severity"] == 3 and "blocked" in row["summary"]


def test_a_csv_export_cannot_carry_a_spreadsheet_formula(console: ConsoleHarness) -> None:
    import csv
    import io

    agent = Agent.enrol(console)
    agent.ship(keyword("bullying", ["nobody likes you"], account="=HYPERLINK(\"http://x\")",
                       context="@SUM(1+1) nobody likes you"))  # fmt: skip
    [row] = console.op("incidents")["rows"]
    dsl = Client(console.url)
    dsl.login("dsl")
    status, body, kind = dsl.get_bytes(f"/incidents/{row['id']}/export.csv")
    assert status == 200 and kind.startswith("text/csv")
    cells = [cell for line in csv.reader(io.StringIO(body.decode())) for cell in line]
    assert "'=HYPERLINK(\"http://x\")" in cells  # shown as text, not run
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    status, pdf, kind = dsl.get_bytes(f"/incidents/{row['id']}/export.pdf")
    assert status == 200 and pdf.startswith(b"%PDF")
    for active in (b"/JavaScript", b"/JS ", b"/OpenAction", b"/Launch", b"/EmbeddedFile", b"/AA"):
        assert active not in pdf  # no active content in the PDF either
