"""From a signed detection to a closed incident and its CPOMS export, over real HTTP."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword, url

pytestmark = pytest.mark.integration


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'href="/incidents/(\d+)"', html)]


def test_detection_becomes_a_candidate_that_a_dsl_closes_and_exports(
    console: ConsoleHarness,
) -> None:
    agent = Agent.enrol(console)
    agent.ship(keyword("self_harm", ["cut myself"], context="i want to cut myself tonight"))
    dsl = Client(console.url)
    status, page = dsl.login("dsl")
    assert status == 200 and "<h1>Needs attention</h1>" in page
    [iid] = set(_ids(page))
    status, page = dsl.get(f"/incidents/{iid}")
    assert status == 200
    assert "cut myself" in page and "pupil.amy" in page and "self harm" in page
    # Start review, verify the evidence, close with an outcome.
    dsl.post(f"/incidents/{iid}/status", {"status": "in_review"})
    status, page = dsl.post(f"/incidents/{iid}/verify")
    assert "Evidence verified: all 1 events" in page
    status, page = dsl.post(
        f"/incidents/{iid}/outcome", {"outcome": "handled_in_school", "note": "Spoke to Amy."}
    )
    assert status == 200 and "Handled in school" in page and "Closed" in page
    _, body, ctype = dsl.get_bytes(f"/incidents/{iid}/export.json")
    record = json.loads(body)
    assert ctype == "application/json"
    assert record["student"] == "pupil.amy" and record["outcome"] == "Handled in school"
    assert record["evidence"][0]["context"] == "i want to cut myself tonight"
    assert record["chain_proof"].startswith("Evidence verified")
    _, pdf, ctype = dsl.get_bytes(f"/incidents/{iid}/export.pdf")
    assert ctype == "application/pdf" and pdf.startswith(b"%PDF")


def test_related_events_group_and_combined_extremism_signals_escalate(
    console: ConsoleHarness,
) -> None:
    agent = Agent.enrol(console)
    agent.ship(url("extremism", "https://extreme.example/join"))
    agent.ship(keyword("extremism", ["join the fight"], score=10, source="search:google"))
    agent.ship(keyword("bullying", ["loser"], account="pupil.ben"))
    rows = console.op("incidents", status="")["rows"]
    by_account = {r["account"]: r for r in rows}
    assert len(rows) == 2
    ext = by_account["pupil.amy"]
    assert ext["event_count"] == 2 and ext["escalated"]
    assert ext["severity"] == 5  # extremism at score 10 is 4; site + search raise it by one
    assert by_account["pupil.ben"]["severity"] == 2 and not by_account["pupil.ben"]["escalated"]


def test_extremism_escalates_only_for_a_site_then_searches(console: ConsoleHarness) -> None:
    agent = Agent.enrol(console)
    now = int(time.time() * 1000)
    # Searches first, then the site: not the pattern.
    agent.ship(keyword("extremism", ["join the fight"], account="pupil.amy", at_ms=now - 60_000,
                       source="search:google"))  # fmt: skip
    agent.ship(url("extremism", "https://extreme.example/join", account="pupil.amy", at_ms=now))
    # The site, then words typed in a chat (not a search): not the pattern either.
    agent.ship(url("extremism", "https://extreme.example/join", account="pupil.ben",
                   at_ms=now - 60_000))  # fmt: skip
    agent.ship(keyword("extremism", ["join the fight"], account="pupil.ben", at_ms=now))
    rows = {r["account"]: r for r in console.op("incidents", status="")["rows"]}
    assert not rows["pupil.amy"]["escalated"] and rows["pupil.amy"]["severity"] == 4
    assert not rows["pupil.ben"]["escalated"] and rows["pupil.ben"]["severity"] == 4


def test_a_search_typed_and_seen_in_the_url_does_not_escalate_itself(
    console: ConsoleHarness,
) -> None:
    # The keyboard sees the query typed, the browser sensor sees it in the search URL: one
    # self-harm signal, not "self-harm and suicide signals together".
    agent = Agent.enrol(console)
    typed = keyword("self_harm", ["self harm"], account="pupil.amy")
    searched = keyword("self_harm", ["self harm"], account="pupil.amy", source="search:google")
    agent.ship(typed, searched)
    [row] = console.op("incidents", status="")["rows"]
    assert row["severity"] == 4 and not row["escalated"]


def test_exempted_matches_make_no_candidate_but_are_counted(console: ConsoleHarness) -> None:
    agent = Agent.enrol(console)
    # The shipped policy's exemption: an id no policy defines would be a PC's own choice.
    agent.ship(keyword("violence", ["assassination"], exemption="ks2-history-assassinations"))
    assert console.op("incidents", status="")["total"] == 0
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.get("/exemptions")
    assert "ks2-history" in page
