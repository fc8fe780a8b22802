"""Outcomes as schools record them (issue 17): referrals to children's social care (MASH) and
early help under the two-person rule, a CPOMS reference, and no closing past open follow-ups
unless the closer says why; over real HTTP, with the incident's record checked each time."""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration


def _incident(console: ConsoleHarness, dsl: Client) -> int:
    Agent.enrol(console).ship(keyword("grooming", ["send me a pic"], context="send me a pic"))
    _, page = dsl.get("/incidents")
    return int(re.findall(r'href="/incidents/(\d+)"', page)[0])


def _record_ok(page: str) -> bool:
    return '<p class="record-check ok"' in page


def test_a_follow_up_still_open_stops_a_close_unless_the_closer_says_why(
    console: ConsoleHarness,
) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    iid = _incident(console, dsl)
    dsl.post(f"/incidents/{iid}/note", {"text": "Speak to Amy's teacher", "due": "2026-12-10"})
    _, page = dsl.post(f"/incidents/{iid}/outcome", {"outcome": "no_concern", "note": ""})
    assert "1 follow-up action(s) are still open (Speak to Amy" in page
    assert "say why" in page and console.op("incidents", status="closed")["rows"] == []
    why = "teacher left; DSL spoke to Amy"
    _, page = dsl.post(f"/incidents/{iid}/outcome",
                       {"outcome": "no_concern", "note": "", "open_reason": why})  # fmt: skip
    assert "Closed." in page and _record_ok(page)
    assert "Closed with 1 follow-up(s) open, because: teacher left; DSL spoke to Amy" in page


def test_recorded_in_cpoms_keeps_its_reference_in_the_page_the_record_and_the_exports(
    console: ConsoleHarness,
) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    iid = _incident(console, dsl)
    _, page = dsl.post(f"/incidents/{iid}/outcome", {
        "outcome": "recorded_cpoms", "note": "", "cpoms_ref": "CP-2026-0412"})  # fmt: skip
    assert "CPOMS reference" in page and "CP-2026-0412" in page and _record_ok(page)
    _, body, _ = dsl.get_bytes(f"/incidents/{iid}/export.json")
    assert json.loads(body)["cpoms_reference"] == "CP-2026-0412"
    assert "CP-2026-0412" in dsl.get(f"/incidents/{iid}/export.csv")[1]
    # An edit of the reference in the database is caught by the record.
    console.with_store(lambda s: s.con.execute("UPDATE incidents SET cpoms_ref = 'CP-9'"))
    _, page = dsl.get(f"/incidents/{iid}")
    assert not _record_ok(page) and "cpoms_ref is &#39;CP-9&#39;" in page


@pytest.mark.parametrize("outcome", ["referred_mash", "referred_early_help"])
def test_mash_and_early_help_referrals_are_made_at_once_and_need_a_second_person(
    console: ConsoleHarness, outcome: str
) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    iid = _incident(console, dsl)
    dsl.post(f"/incidents/{iid}/note", {"text": "Check in with Amy on Monday", "due": "2026-12-14"})
    _, page = dsl.post(f"/incidents/{iid}/outcome", {"outcome": outcome, "note": "called MASH"})
    # Made at once; with a follow-up open and no reason given, the incident stays open.
    assert "Referral recorded as made" in page and "stays open" in page and _record_ok(page)
    assert console.op("incidents", status="closed")["rows"] == []
    rid = int(re.search(r"/referrals/(\d+)/withdraw", page).group(1))  # type: ignore[union-attr]
    _, page = dsl.post(f"/incidents/{iid}/referrals/{rid}/confirm")
    assert "someone else must confirm" in page
    head = Client(console.url)
    head.login("head")
    _, page = head.post(f"/incidents/{iid}/referrals/{rid}/confirm")
    assert "confirmed by a second senior member of staff" in page and _record_ok(page)
    label = {"referred_mash": "children&#39;s social care (MASH)",
             "referred_early_help": "early help"}[outcome]  # fmt: skip
    assert label in page
    # The follow-up done, the same outcome closes the incident: no second referral is made.
    aid = re.search(r"/actions/(\d+)/done", page).group(1)  # type: ignore[union-attr]
    dsl.post(f"/incidents/{iid}/actions/{aid}/done")
    _, page = dsl.post(f"/incidents/{iid}/outcome", {"outcome": outcome, "note": "done"})
    assert "Closed." in page and _record_ok(page)
    referrals = console.with_store(lambda s: s.con.execute(
        "SELECT count(*) FROM referrals WHERE incident_id = ?", [iid]).fetchone())  # fmt: skip
    assert referrals == (1,)


def test_a_cpoms_reference_longer_than_cpoms_makes_them_is_refused(
    console: ConsoleHarness,
) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    iid = _incident(console, dsl)
    _, page = dsl.post(f"/incidents/{iid}/outcome", {"outcome": "recorded_cpoms",
                                                     "cpoms_ref": "x" * 41})  # fmt: skip
    assert "at most 40 characters" in page
    assert console.op("incidents", status="closed")["rows"] == []
