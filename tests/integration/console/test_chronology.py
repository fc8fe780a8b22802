"""A chronology per pupil and per machine (issue 17), over real HTTP: two machines and two
days, candidates, events and the DSL's actions in time order; printable page, CSV export;
audited; only the safeguarding team."""

from __future__ import annotations

import csv
import io
import re
import time

import pytest

from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration
DAY = 86_400_000


def test_a_pupils_chronology_runs_across_machines_and_days_in_time_order(
    console: ConsoleHarness,
) -> None:
    now = int(time.time() * 1000)
    library, classroom = Agent.enrol(console), Agent.enrol(console)
    library.ship(keyword("grooming", ["our secret"], context="keep it our secret",
                         at_ms=now - 2 * DAY))  # fmt: skip
    classroom.ship(keyword("grooming", ["send me a pic"], at_ms=now - DAY))
    classroom.ship(keyword("bullying", ["loser"], account="pupil.ben", at_ms=now - DAY))
    dsl = Client(console.url)
    dsl.login("dsl")
    _, listing = dsl.get("/incidents")
    assert 'href="/pupils/pupil.amy/chronology"' in listing  # names are links
    first = min(int(x) for x in re.findall(r'href="/incidents/(\d+)"', listing))
    dsl.post(f"/incidents/{first}/note", {"text": "Spoke to Amy's parents", "due": ""})
    status, page = dsl.get("/pupils/pupil.amy/chronology")
    assert status == 200 and "Chronology: pupil.amy" in page
    rows = re.findall(r'<tr class="chron-(\w+)">(.*?)</tr>', page, re.S)
    kinds = [k for k, _ in rows]
    assert kinds.count("candidate") == 2 and kinds.count("event") == 2
    assert kinds.count("action") == 1 and "pupil.ben" not in page
    assert "Spoke to Amy&#39;s parents" in page
    incidents = set(re.findall(r'data-label="Incident"><a href="/incidents/(\d+)"', page))
    assert len(incidents) == 2  # one on each machine, in one chronology
    # Time order: the library's event two days ago comes first, the note (now) last.
    assert kinds[0] == "candidate" and kinds[-1] == "action"
    status, text = dsl.get("/pupils/pupil.amy/chronology.csv")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[1] == ["date", "time", "entry", "detail", "machine", "recorded by", "incident"]
    assert len(lines) == 2 + len(rows) and lines[-1][5] == "dsl"
    audit = console.with_store(lambda s: s.con.execute(
        "SELECT action, target FROM audit WHERE action LIKE '%chronology'").fetchall())  # fmt: skip
    assert ("view_chronology", "pupil:pupil.amy") in audit
    assert ("export_chronology", "pupil:pupil.amy") in audit
    # Per machine: every pupil on it.
    status, page = dsl.get(f"/machines/{classroom.sim.agent_id}/chronology")
    assert status == 200 and "pupil.amy" in page and "pupil.ben" in page
    _, page = dsl.get(f"/machines/{library.sim.agent_id}/chronology")
    assert "pupil.amy" in page and "pupil.ben" not in page


@pytest.mark.parametrize("who", ["tech", "gov"])
def test_only_the_safeguarding_team_sees_a_chronology(console: ConsoleHarness, who: str) -> None:
    Agent.enrol(console).ship(keyword("grooming", ["our secret"]))
    c = Client(console.url)
    c.login(who)
    status, page = c.get("/pupils/pupil.amy/chronology")
    assert status == 403 and "our secret" not in page
