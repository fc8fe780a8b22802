"""The triage list's filters, each on its own, and a pager that keeps them, over real HTTP."""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.parse

import pytest

from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000


def _ids(html: str) -> set[int]:
    return {int(x) for x in re.findall(r'href="/incidents/(\d+)[?"]', html)}


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()


def test_each_filter_narrows_the_list(console: ConsoleHarness) -> None:
    now = int(time.time() * 1000)
    amy, ben = Agent.enrol(console), Agent.enrol(console)
    amy.ship(keyword("bullying", ["loser"], account="pupil.amy", at_ms=now - 10 * DAY_MS))
    amy.ship(keyword("self_harm", ["cut myself"], account="pupil.amy", at_ms=now))
    ben.ship(keyword("gambling", ["free spins"], account="pupil.ben", at_ms=now))
    rows = {r["category"]: r for r in console.op("incidents", status="")["rows"]}
    bully, harm, gamble = (rows[c]["id"] for c in ("bullying", "self_harm", "gambling"))
    console.with_store(lambda s: s.con.execute(
        "UPDATE incidents SET status = 'closed' WHERE id = ?", [gamble]))  # fmt: skip
    host = console.op("agents")[0]["hostname"]
    dsl = Client(console.url)
    dsl.login("dsl")

    def listed(**query: object) -> set[int]:
        status, page = dsl.get("/incidents?" + urllib.parse.urlencode(query))
        assert status == 200
        return _ids(page)

    assert listed(status="") == {bully, harm, gamble}
    assert listed() == {bully, harm}  # open ones by default
    assert listed(status="closed") == {gamble}
    assert listed(status="", severity=4) == {harm}
    assert listed(status="", category="gambling") == {gamble}
    assert listed(status="", pupil="amy") == {bully, harm}
    assert listed(status="", machine=host[:4]) == {bully, harm, gamble}
    assert listed(status="", machine="no-such-room") == set()
    assert listed(status="", since=_day(now - 2 * DAY_MS)) == {harm, gamble}
    assert listed(status="", until=_day(now - 5 * DAY_MS)) == {bully}


def test_the_pager_keeps_every_filter(console: ConsoleHarness) -> None:
    now = int(time.time() * 1000)
    agent = Agent.enrol(console)
    agent.ship(*(keyword("bullying", ["loser"], account=f"pupil.{n:03}", at_ms=now)
                 for n in range(55)))  # fmt: skip
    dsl = Client(console.url)
    dsl.login("dsl")
    today = _day(now)
    status, first = dsl.get(f"/incidents?status=&category=bullying&pupil=pupil&since={today}")
    assert status == 200 and len(_ids(first)) == 50
    [link] = re.findall(r'<a href="(\?[^"]*page=1)">Next</a>', first)
    query = urllib.parse.parse_qs(link[1:].replace("&amp;", "&"), keep_blank_values=True)
    assert query["category"] == ["bullying"] and query["since"] == [today]
    assert query["pupil"] == ["pupil"] and query["page"] == ["1"]
    status, second = dsl.get("/incidents" + link.replace("&amp;", "&"))
    assert status == 200 and len(_ids(second)) == 5 and not _ids(first) & _ids(second)
