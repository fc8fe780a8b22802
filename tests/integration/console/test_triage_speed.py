"""Triage at speed (issue 17 item 5), over real HTTP: next/previous within the list's filters,
closing many "no concern" candidates with one reason (each recorded and audited on its own, a
refusal named per incident), and a search over what was typed, seen and noted."""

from __future__ import annotations

import html
import re
import time
import urllib.parse

import pytest

from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword, url

pytestmark = pytest.mark.integration


def _list_ids(page: str) -> list[int]:
    """The incidents the list shows, in its order (each row links twice)."""
    return list(dict.fromkeys(int(x) for x in re.findall(r'href="/incidents/(\d+)[?"]', page)))


def _bullying_and_one_other(console: ConsoleHarness) -> list[int]:
    agent = Agent.enrol(console)
    now = int(time.time() * 1000)
    for i, pupil in enumerate(("pupil.amy", "pupil.ben", "pupil.cat")):
        agent.ship(keyword("bullying", ["loser"], account=pupil, at_ms=now - i * 60_000))
    agent.ship(keyword("self_harm", ["cut myself"], account="pupil.dan", at_ms=now))
    rows = console.op("incidents", status="")["rows"]
    assert len(rows) == 4
    return [int(r["id"]) for r in rows if r["category"] == "bullying"]


def test_next_and_previous_stay_within_the_lists_filters(console: ConsoleHarness) -> None:
    _bullying_and_one_other(console)
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.get("/incidents?category=bullying")
    first, second, third = _list_ids(page)
    assert f'href="/incidents/{first}?status=open&amp;category=bullying"' in page
    _, page = dsl.get(f"/incidents/{first}?status=open&category=bullying")
    assert f'href="/incidents/{second}?status=open&amp;category=bullying" rel="next"' in page
    assert 'rel="prev"' not in page  # the first of the list
    # The shortcuts' list is in the page once, after its content, never in its title.
    assert re.search(r"<title>Incident #\d+ - Safeguarding console</title>", page)
    assert page.count('id="shortcuts"') == 1
    _, page = dsl.get(f"/incidents/{second}?status=open&category=bullying")
    assert f'/incidents/{first}?status=open&amp;category=bullying" rel="prev"' in page
    assert f'/incidents/{third}?status=open&amp;category=bullying" rel="next"' in page
    # Closed, the incident leaves the "open" list; the page it returns to still goes on.
    _, page = dsl.post(f"/incidents/{second}/outcome?status=open&category=bullying",
                       {"outcome": "no_concern", "note": "banter between friends"})  # fmt: skip
    assert "Closed." in page
    assert f'/incidents/{third}?status=open&amp;category=bullying" rel="next"' in page
    _, page = dsl.get(f"/incidents/{third}?status=open&category=bullying")
    assert f'/incidents/{first}?status=open&amp;category=bullying" rel="prev"' in page
    assert 'rel="next"' not in page  # the self-harm candidate is not in this list


def _audit_closed(console: ConsoleHarness) -> list[str]:
    rows = console.with_store(lambda s: s.con.execute(
        "SELECT target FROM audit WHERE action = 'closed' ORDER BY seq").fetchall())  # fmt: skip
    return [str(r[0]) for r in rows]


def _closed_entries(console: ConsoleHarness) -> dict[int, str]:
    query = "SELECT incident_id, fields FROM incident_log WHERE kind = 'closed'"
    rows = console.with_store(lambda s: s.con.execute(query).fetchall())
    return {int(r[0]): str(r[1]) for r in rows}


def test_bulk_close_records_and_audits_each_and_names_the_one_refused(
    console: ConsoleHarness,
) -> None:
    ids = _bullying_and_one_other(console)
    dsl = Client(console.url)
    dsl.login("dsl")
    held = ids[1]
    dsl.post(f"/incidents/{held}/note", {"text": "Speak to Ben's teacher", "due": "2099-01-31"})
    status, page = dsl.post(
        "/incidents/close?category=bullying",
        [*(("id", str(i)) for i in ids), ("outcome", "no_concern"),
         ("reason", "Year 5 anti-bullying lesson; words from the worksheet")],
    )  # fmt: skip
    assert status == 200
    text = html.unescape(page)
    assert "Closed 2 of 3 as No concern." in text
    assert f"#{held} not closed: 1 follow-up action(s) are still open" in text
    # Back on the same list: only the refused one is left open in it.
    assert _list_ids(page) == [held]
    others = [i for i in ids if i != held]
    assert sorted(_audit_closed(console)) == sorted(f"incident:{i}" for i in others)
    entries = _closed_entries(console)
    assert sorted(entries) == sorted(others)
    assert all("Year 5 anti-bullying lesson" in e for e in entries.values())
    for iid in others:
        page = dsl.get(f"/incidents/{iid}")[1]
        assert "No concern" in page and "Record as recorded" in page


def test_bulk_close_refuses_a_referral_and_a_missing_reason(console: ConsoleHarness) -> None:
    ids = _bullying_and_one_other(console)
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.post("/incidents/close", [("id", str(ids[0])), ("outcome", "referred_police"),
                                            ("reason", "x")])  # fmt: skip
    assert "Choose an outcome for the selected incidents" in page
    _, page = dsl.post("/incidents/close", [("id", str(ids[0])), ("outcome", "no_concern"),
                                            ("reason", "   ")])  # fmt: skip
    assert "Give the reason" in page
    assert _audit_closed(console) == []
    # A role that may not triage cannot close in bulk either.
    tech = Client(console.url)
    tech.login("tech")
    status, _ = tech.post("/incidents/close", [("id", str(ids[0])), ("outcome", "no_concern"),
                                               ("reason", "mine")])  # fmt: skip
    assert status == 403 and _audit_closed(console) == []


def test_search_finds_words_typed_only_in_context_in_a_url_and_in_a_note(
    console: ConsoleHarness,
) -> None:
    agent = Agent.enrol(console)
    agent.ship(keyword("bullying", ["loser"], account="pupil.amy",
                       context="nobody at Greenfield Café likes you, you're a loser"))  # fmt: skip
    agent.ship(url("gambling", "https://spins.example/free_100%", account="pupil.ben"))
    agent.ship(keyword("self_harm", ["cut myself"], account="pupil.cat", context="cut myself"))
    rows = {r["account"]: int(r["id"]) for r in console.op("incidents", status="")["rows"]}
    amy, ben, cat = rows["pupil.amy"], rows["pupil.ben"], rows["pupil.cat"]
    dsl = Client(console.url)
    dsl.login("dsl")
    dsl.post(f"/incidents/{cat}/note", {"text": "Mum says the school nurse knows"})

    def found(q: str, **more: str) -> set[int]:
        status, page = dsl.get("/incidents?" + urllib.parse.urlencode({"q": q, **more}))
        assert status == 200
        return set(_list_ids(page))

    assert found("GREENFIELD") == {amy}  # typed only in the context, any case
    assert found("café") == {amy} and found("you're a") == {amy}  # beyond ASCII; a quote
    assert found("spins.example/free_100%") == {ben}  # % and _ are themselves
    assert found("free_1000") == set()
    assert found("school nurse") == {cat}  # a staff note
    assert found("gambling") == {ben}  # the category
    assert found("greenfield", status="closed") == set()  # with the other filters
    assert found("no such words anywhere") == set()
    # The search is kept by next/previous and by the pager.
    _, page = dsl.get(f"/incidents/{amy}?q=greenfield")
    assert 'rel="next"' not in page and 'rel="prev"' not in page
    assert f'href="/incidents/{amy}?status=open&amp;q=greenfield"' in dsl.get(
        "/incidents?q=greenfield")[1]  # fmt: skip


def test_a_candidate_assigned_to_a_named_dsl_shows_on_the_list_and_under_mine(
    console: ConsoleHarness,
) -> None:
    ids = _bullying_and_one_other(console)
    dsl, deputy = Client(console.url), Client(console.url)
    dsl.login("dsl")
    deputy.login("deputy")
    _, page = dsl.post(f"/incidents/{ids[0]}/assign", {"to": "deputy"})
    assert "Assigned to Dev Deputy." in page
    _, page = dsl.post(f"/incidents/{ids[1]}/assign", {"to": "tech"})  # not on the team
    assert "tech is not an account on the safeguarding team" in html.unescape(page)
    dsl.post(f"/incidents/{ids[2]}/assign", {"to": "dsl"})
    assert set(_list_ids(deputy.get("/incidents?mine=1")[1])) == {ids[0]}
    assert set(_list_ids(dsl.get("/incidents?mine=1")[1])) == {ids[2]}
    listing = dsl.get("/incidents")[1]
    assert "with Dev Deputy" in listing and "with you" in listing
    # Recorded and audited like any other step; the record still matches the table.
    assert "Record as recorded" in dsl.get(f"/incidents/{ids[0]}")[1]
    query = "SELECT target, detail FROM audit WHERE action = 'assigned' ORDER BY seq"
    audited = console.with_store(lambda s: s.con.execute(query).fetchall())
    assert audited == [(f"incident:{ids[0]}", "no one -> deputy"),
                       (f"incident:{ids[2]}", "no one -> dsl")]  # fmt: skip
    # Taken back: no one.
    _, page = dsl.post(f"/incidents/{ids[0]}/assign", {"to": ""})
    assert "Assigned to no one." in page
    assert _list_ids(deputy.get("/incidents?mine=1")[1]) == []
