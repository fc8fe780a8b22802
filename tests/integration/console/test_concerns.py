"""One concern per candidate (issue 17): grooming, suicide, violence and extremism from one
pupil are four candidates, linked as related, not one titled by the most severe; candidates
made before (several concerns in one) are superseded at start, never rewritten."""

from __future__ import annotations

import re

import pytest

from collector.incidents import concern_split, engine
from collector.integrity import records
from collector.storage.store import Store
from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration

FOUR = [("grooming", "send me a pic"), ("suicide", "want to die"),
        ("violence", "bring a knife"), ("extremism", "join the fight")]  # fmt: skip


def _rows(console: ConsoleHarness) -> list[dict[str, object]]:
    return console.op("incidents", status="")["rows"]  # type: ignore[no-any-return]


def _record_faults(console: ConsoleHarness) -> list[str]:
    key = console.running.incidents.engine.record_key
    assert key is not None
    return console.with_store(lambda s: records.check(s.con, key).faults)


def test_four_concerns_from_one_pupil_are_four_candidates_linked_as_related(
    console: ConsoleHarness,
) -> None:
    agent = Agent.enrol(console)
    for category, term in FOUR:
        agent.ship(keyword(category, [term], context=term))
    agent.ship(keyword("pornography", ["nudes"]))  # sexual content: grooming's concern
    rows = _rows(console)
    assert sorted(str(r["category"]) for r in rows) == sorted(c for c, _ in FOUR)
    dsl = Client(console.url)
    dsl.login("dsl")
    grooming = next(r for r in rows if r["category"] == "grooming")
    _, page = dsl.get(f"/incidents/{grooming['id']}")
    assert "Grooming and sexual content" in page and "pornography" in page
    related = re.findall(r'<ul class="related">(.*?)</ul>', page, re.S)[0]
    assert {"Self-harm and suicide", "Violence", "Extremism and discrimination"} <= {
        t for t in re.findall(r'#\d+ ([^<]+)</a>', related)}  # fmt: skip
    assert not _record_faults(console)


def test_a_candidate_that_mixed_concerns_is_superseded_by_one_per_concern(
    console: ConsoleHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A collector from before: every detection of a pupil grouped in one candidate.
    monkeypatch.setattr(engine, "concern_of", lambda kind, category: "")
    agent = Agent.enrol(console)
    for category, term in FOUR[:2]:
        agent.ship(keyword(category, [term], context=term))
    agent.ship(keyword("bullying", ["loser"], account="pupil.ben"))
    [old] = [r for r in _rows(console) if r["account"] == "pupil.amy"]
    assert "suicide" in str(old["category"]) or "grooming" in str(old["category"])
    monkeypatch.undo()
    eng = console.running.incidents.engine
    counts = console.with_store(lambda s: concern_split.split_by_concern(eng, s))
    assert counts == {"set": 1, "superseded": 1, "kept_mixed": 0}  # ben's: one concern
    rows = {int(str(r["id"])): r for r in _rows(console)}
    assert rows[int(str(old["id"]))]["status"] == "closed"
    assert rows[int(str(old["id"]))]["outcome"] == "superseded"
    amy = [r for r in rows.values() if r["account"] == "pupil.amy" and r["status"] == "new"]
    assert sorted(str(r["category"]) for r in amy) == ["grooming", "suicide"]
    assert not _record_faults(console)  # superseded by entries, nothing rewritten
    # Its evidence stays with it, and the page links the candidates that took its events.
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.get(f"/incidents/{old['id']}")
    assert "send me a pic" in page and "Superseded: split into one candidate per concern" in page
    assert all(f'href="/incidents/{r["id"]}"' in page for r in amy)
    # Run again (the next start): nothing more to do.
    again = console.with_store(lambda s: concern_split.split_by_concern(eng, s))
    assert again == {"set": 0, "superseded": 0, "kept_mixed": 0}


def test_a_mixed_candidate_a_dsl_has_worked_on_keeps_its_history(
    console: ConsoleHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "concern_of", lambda kind, category: "")
    agent = Agent.enrol(console)
    for category, term in FOUR[:2]:
        agent.ship(keyword(category, [term], context=term))
    [old] = _rows(console)
    monkeypatch.undo()
    dsl = Client(console.url)
    dsl.login("dsl")
    dsl.post(f"/incidents/{old['id']}/status", {"status": "in_review"})
    eng = console.running.incidents.engine

    def split(s: Store) -> dict[str, int]:
        return concern_split.split_by_concern(eng, s)

    assert console.with_store(split) == {"set": 0, "superseded": 0, "kept_mixed": 1}
    assert [r["status"] for r in _rows(console)] == ["in_review"]
    assert not _record_faults(console)
