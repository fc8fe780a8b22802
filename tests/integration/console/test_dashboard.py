"""The DSL lands on what needs attention (issue 17), over real HTTP: new severity 4-5, the
oldest unreviewed, referrals waiting for a second person, follow-ups past their date, coverage
and this week against the last; each count links to its filtered list."""

from __future__ import annotations

import re
import time

import pytest

from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration
DAY = 86_400_000


def test_the_dsl_lands_on_what_needs_attention_now(console: ConsoleHarness) -> None:
    now = int(time.time() * 1000)
    agent = Agent.enrol(console)
    agent.ship(keyword("grooming", ["send me a pic"], score=40))  # severity 5
    agent.ship(keyword("bullying", ["loser"], account="pupil.ben", at_ms=now - 3 * DAY))
    agent.ship(keyword("drugs", ["weed"], account="pupil.cal", at_ms=now - 9 * DAY))
    dsl = Client(console.url)
    status, page = dsl.login("dsl")
    assert status == 200 and "<h1>Needs attention</h1>" in page
    rows = {r["category"]: r for r in console.op("incidents", status="")["rows"]}
    severe = re.search(r'New, severity 4 or 5: <span class="count">(\d+)', page)
    assert severe and int(severe.group(1)) == sum(r["severity"] >= 4 for r in rows.values())
    assert 'href="/incidents?status=new&amp;severity=4"' in page
    assert 'Not yet reviewed: <span class="count">3</span>' in page
    assert "waiting 9 days" in page  # the oldest first
    assert "1 of 1 PCs reporting" in page
    # A referral and an overdue follow-up appear; once dealt with, they go.
    iid = rows["bullying"]["id"]
    dsl.post(f"/incidents/{iid}/note", {"text": "Phone Ben's mum", "due": "2020-01-01"})
    _, page = dsl.get("/dashboard")
    assert 'Follow-ups past their date: <span class="count">1</span>' in page
    assert "Phone Ben&#39;s mum" in page
    _, detail = dsl.get(f"/incidents/{iid}")
    aid = re.search(r"/actions/(\d+)/done", detail).group(1)  # type: ignore[union-attr]
    dsl.post(f"/incidents/{iid}/actions/{aid}/done")
    dsl.post(f"/incidents/{rows['grooming']['id']}/outcome",
             {"outcome": "referred_police", "note": ""})  # fmt: skip
    _, page = dsl.get("/dashboard")
    assert 'Follow-ups past their date: <span class="count">0</span>' in page
    assert 'Referrals waiting for a second person: <span class="count">1</span>' in page
    # This week against last: candidates by concern with the change.
    table = re.search(r'<h2 id="weeks-h">.*?</table>', page, re.S)
    assert table and "Grooming and sexual content" in table.group(0)
    audit = console.with_store(lambda s: s.con.execute(
        "SELECT count(*) FROM audit WHERE action = 'view_dashboard'").fetchone())  # fmt: skip
    assert audit[0] >= 3


@pytest.mark.parametrize("who", ["tech", "gov"])
def test_the_dashboard_is_for_the_safeguarding_team(console: ConsoleHarness, who: str) -> None:
    c = Client(console.url)
    c.login(who)
    assert c.get("/dashboard")[0] == 403
