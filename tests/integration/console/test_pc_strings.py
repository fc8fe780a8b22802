"""Nothing a PC chooses becomes a label on a page (issue 16, item 9), on a real collector.

A PC holds its signing key, so one someone has taken over can sign any event. A category no
policy defines, an over-long or control-character field: the batch is stored whole (the chain
must not break; the events are signed evidence), each such event gets a tampering record
naming the agent, seq and field, and none reaches the governors' summary, the weekly report or
the incident list. Honest events in the same batch work as before.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from collector import policy
from collector.intake import vocabulary
from collector.reporting import reports
from protos import events_pb2
from rules.load import DEFAULT_DIR
from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword, url

pytestmark = pytest.mark.integration

BAD_CATEGORIES = ["<script>", "x" * 500, "grooming\x07", "sexting"]  # sexting: no policy has it
STRANGE = ["script", "x" * 50, "sexting", "\x07", "&#7;", "\\x07"]


def _text(page: str) -> str:
    """The page less what the console itself puts there: images, and its own script tag."""
    page = re.sub(r'<script src="/static/[a-z]+\.js" defer></script>', "", page)
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


def _assert_clean(page: str) -> None:
    text = _text(page)
    for strange in STRANGE:
        assert strange not in text, strange


def test_strings_a_pc_chose_become_tampering_records_never_labels(
    console: ConsoleHarness,
) -> None:
    agent = Agent.enrol(console)
    honest = keyword("grooming", ["send me a photo"], context="please send me a photo")
    crafted: list[events_pb2.Event] = [keyword(c, ["hello"]) for c in BAD_CATEGORIES]
    crafted.append(url("<script>", "https://example.org/"))
    # Typed context may hold any printable text, but not a terminal escape.
    crafted.append(keyword("bullying", ["loser"], context="you loser \x1b[31m"))
    crafted.append(keyword("bullying", ["loser"], source="<img src=x>"))
    agent.ship(honest, *crafted)  # acknowledged whole: the chain goes on
    agent.ship(keyword("self_harm", ["cut myself"]))  # and the next batch continues it

    events = console.events(agent.agent_id)
    assert [e["seq"] for e in events] == list(range(1, len(crafted) + 3))  # all kept
    records = console.tampering(agent.agent_id)
    assert [r["kind"] for r in records] == ["malformed_field"] * len(crafted)
    assert [r["first_seq"] for r in records] == list(range(2, len(crafted) + 2))
    fields = [r["detail"].split(": ")[1] for r in records]
    assert fields == ["keyword.category"] * 4 + ["url.category", "keyword.context",
                                                 "keyword.source"]  # fmt: skip
    for r in records:
        assert r["evidence_bytes"] > 0  # the event as the PC signed it
        for strange in STRANGE[:4]:
            assert strange not in r["detail"]  # the record names the field, never quotes it

    # The DSL sees the honest detections and one tampering candidate, nothing else.
    dsl = Client(console.url)
    dsl.login("dsl")
    status, listing = dsl.get("/incidents")
    assert status == 200
    assert "grooming" in listing and "cut myself" in listing and "tampering" in listing
    _assert_clean(listing)
    assert "&lt;script" not in listing and "&lt;img" not in listing
    kinds = console.with_store(lambda s: s.con.execute(
        "SELECT kind, category FROM incidents ORDER BY id").fetchall())  # fmt: skip
    # One pupil, one PC: a candidate per concern, and the tampering one.
    assert sorted(kinds) == [("detection", "grooming"), ("detection", "self_harm"),
                             ("tampering", "tampering")]  # fmt: skip

    gov = Client(console.url)
    status, page = gov.login("gov")
    assert status == 200 and "Governors' summary" in page and "grooming" in page
    _assert_clean(page)
    assert "&lt;script" not in page

    head = Client(console.url)
    head.login("head")
    monday = dt.date.today() - dt.timedelta(days=dt.date.today().weekday())
    status, weekly = head.get(f"/reports/weekly?week={monday.isoformat()}")
    assert status == 200
    _assert_clean(weekly)
    # Its categories are a chart (a PNG): the same numbers, as the page draws them.
    known = vocabulary.known_categories(console.data)
    rep = console.with_store(lambda s: reports.weekly(s.con, monday, known))
    assert dict(rep["by_category"]) == {"grooming": 1, "self_harm": 1, "tampering": 1}


def test_a_category_made_a_candidate_before_ingest_checked_shows_as_unknown(
    console: ConsoleHarness,
) -> None:
    """Defence at render time: a candidate already in the database under a PC's name (made
    before ingest checked names) is counted as "unknown" on every page, never named."""
    agent = Agent.enrol(console)
    agent.ship(keyword("grooming", ["send me a photo"]))
    console.with_store(lambda s: s.con.execute(
        "UPDATE incidents SET category = 'sexting<b>', categories = 'sexting<b>'"))  # fmt: skip
    gov = Client(console.url)
    status, page = gov.login("gov")
    assert status == 200 and "unknown" in page
    _assert_clean(page)
    dsl = Client(console.url)
    dsl.login("dsl")
    status, listing = dsl.get("/incidents")
    assert status == 200 and "unknown" in listing
    _assert_clean(listing)
    console.with_store(lambda s: s.con.execute(
        "UPDATE incident_signals SET category = 'sexting<b>'"))  # fmt: skip
    (iid,) = console.with_store(lambda s: s.con.execute("SELECT max(id) FROM incidents").fetchone())
    status, page = dsl.get(f"/incidents/{iid}")
    assert status == 200 and "unknown" in page
    # The UPDATE above is itself an edit the incident's record catches and quotes (escaped):
    # that line is the record check's, not a label.
    check = re.search(r'<p class="record-check bad"[^>]*>(.*?)</p>', page)
    assert check and "but the record says" in check.group(1)
    _assert_clean(re.sub(r'<p class="record-check bad".*?</p>', "", page))
    status, csv = dsl.get(f"/incidents/{iid}/export.csv")  # ("description" holds "script")
    assert status == 200 and "unknown" in csv and "sexting" not in csv


def test_a_category_published_while_serving_is_known_at_once(
    console: ConsoleHarness, tmp_path: Path
) -> None:
    """An agent fetches a new policy as soon as it is published and may ship events under its
    new category on the same stream: the verifiers must know the name by then."""
    agent = Agent.enrol(console)
    agent.ship(keyword("grooming", ["send me a photo"]))  # the verifier has read its names
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, folder)
    (folder / "keywords" / "vaping.toml").write_text(
        '[category]\nname = "vaping"\ntitle = "Vaping"\nenabled = true\nthreshold = 10\n'
        'window = 15\n\n[[term]]\npattern = "vape pen"\nweight = 10\n'
        'why = "Buying a vape under age."\nexample = "where can i get a vape pen"\n',
        encoding="utf-8",
    )
    policy.publish(console.data, folder)
    agent.ship(keyword("vaping", ["vape pen"], account="pupil.bob"))
    assert console.tampering(agent.agent_id) == []
    cats = console.with_store(lambda s: s.con.execute(
        "SELECT category FROM incidents ORDER BY id").fetchall())  # fmt: skip
    assert cats == [("grooming",), ("vaping",)]
