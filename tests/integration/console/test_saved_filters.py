"""Saved filters on the incident list (issue 17 item 5), over real HTTP: a DSL keeps the list's
filters under a name, finds it as a link that gives the same list, replaces and deletes it;
another account never sees it; what is kept is the list's own query; all of it audited."""

from __future__ import annotations

import html
import re

import pytest

from collector.integrity import audit
from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration


def _saved(page: str) -> dict[str, str]:
    """name -> link of the saved filters the list page shows."""
    block = page.split('id="saved-filters-h"', 1)[1].split("</section>", 1)[0]
    return {html.unescape(n): html.unescape(h)
            for h, n in re.findall(r'<a href="(/incidents[^"]*)">([^<]+)</a>', block)}  # fmt: skip


def _ids(page: str) -> set[int]:
    return {int(x) for x in re.findall(r'name="id" value="(\d+)"', page)}


def test_save_follow_replace_and_delete_a_filter(console: ConsoleHarness) -> None:
    Agent.enrol(console).ship(keyword("grooming", ["our secret"], score=30),
                              keyword("bullying", ["loser"], account="pupil.ben"))  # fmt: skip
    console.settle()
    dsl = Client(console.url)
    dsl.login("dsl")
    _, everything = dsl.get("/incidents")
    assert len(_ids(everything)) == 2 and _saved(everything) == {}
    _, page = dsl.post("/incidents/filters?severity=4&category=grooming&page=3&bogus=1",
                       {"name": "  Grooming,   4 and up "})  # fmt: skip
    assert "Saved these filters as \u201cGrooming, 4 and up\u201d." in html.unescape(page)
    link = _saved(page)["Grooming, 4 and up"]
    # The list's own query: known filters only, no page, as the list writes it.
    assert link == "/incidents?status=open&severity=4&category=grooming"
    _, filtered = dsl.get(link)
    assert len(_ids(filtered)) == 1 and _ids(filtered) < _ids(everything)
    # The same name again replaces it.
    _, page = dsl.post("/incidents/filters?category=bullying", {"name": "Grooming, 4 and up"})
    assert _saved(page) == {"Grooming, 4 and up": "/incidents?status=open&category=bullying"}
    too_long = "A filter&#39;s name is at most 40 characters."
    for bad, says in (("   ", "Give the filter a name."), ("x" * 41, too_long)):
        _, page = dsl.post("/incidents/filters?severity=5", {"name": bad})
        assert f"Not saved: {says}" in page and len(_saved(page)) == 1
    # Per account: the deputy has none of the DSL's, and cannot delete them.
    deputy = Client(console.url)
    deputy.login("deputy")
    _, page = deputy.get("/incidents")
    assert _saved(page) == {}
    _, page = deputy.post("/incidents/filters/delete", {"name": "Grooming, 4 and up"})
    assert "You have no saved filter of that name." in page
    _, page = dsl.post("/incidents/filters/delete", {"name": "Grooming, 4 and up"})
    assert "Deleted the saved filter" in html.unescape(page) and _saved(page) == {}
    rows = [(r["actor"], r["action"], r["detail"])
            for r in console.with_store(lambda s: audit.read(s.con))
            if r["action"].startswith("filter_")]  # fmt: skip
    assert [(a, act) for a, act, _ in reversed(rows)] == [
        ("dsl", "filter_saved"), ("dsl", "filter_saved"), ("dsl", "filter_deleted")]
    assert "query='status=open&category=bullying' replaced" in rows[1][2]


def test_saving_needs_the_forms_token(console: ConsoleHarness) -> None:
    dsl = Client(console.url)
    dsl.login("dsl")
    status, _ = dsl.post("/incidents/filters", {"name": "x"}, csrf=False)
    assert status == 403
    assert console.with_store(lambda s: s.con.execute(
        "SELECT count(*) FROM saved_filters").fetchone()) == (0,)  # fmt: skip
