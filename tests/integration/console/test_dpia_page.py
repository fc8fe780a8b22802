"""The console's DPIA page: for the DSL and head teacher only, made from the live settings,
audited with the fingerprint it showed, and after "Write this pack" it says what changed."""

from __future__ import annotations

import html
from typing import Any

import pytest

from collector import policy
from collector.integrity import audit
from tests.integration.console.support import Client, ConsoleHarness

pytestmark = pytest.mark.integration


def rows(console: ConsoleHarness, action: str) -> list[dict[str, Any]]:
    got = console.with_store(lambda s: audit.read(s.con, 1000))
    return [r for r in got if r["action"] == action]


def test_only_the_dsl_and_head_see_it_and_each_view_is_audited(console: ConsoleHarness) -> None:
    for who in ("tech", "gov", "deputy"):
        c = Client(console.url)
        c.login(who)
        assert c.get("/dpia")[0] == 403, who
        assert c.get("/dpia/notice-pupils.md")[0] == 403, who
        assert 'href="/dpia"' not in c.get("/")[1]

    dsl = Client(console.url)
    dsl.login("dsl")
    status, page = dsl.get("/dpia")
    assert status == 503 and "no policy is published" in page  # said plainly, no traceback
    policy.publish(console.data)

    status, page = dsl.get("/dpia")
    assert status == 200, page
    text = html.unescape(page)
    assert "How the school computers help keep you safe" in text
    assert "Privacy notice for parents and carers" in text and "Privacy notice for staff" in text
    assert "No pack has been written yet" in text and "passed" in text
    assert "<script" not in page
    status, md, kind = dsl.get_bytes("/dpia/notice-pupils.md")
    assert status == 200 and kind.startswith("text/markdown")
    assert md.decode().startswith("# How the school computers help keep you safe")

    head = Client(console.url)
    head.login("head")
    assert head.get("/dpia")[0] == 200
    seen = {(r["actor"], r["target"]) for r in rows(console, "view_dpia")}
    assert {("dsl", "dpia"), ("dsl", "dpia:notice-pupils"), ("head", "dpia")} <= seen
    assert all(r["detail"].startswith("fingerprint=") for r in rows(console, "view_dpia"))


def test_written_then_a_retention_change_is_reported(console: ConsoleHarness) -> None:
    policy.publish(console.data)
    dsl = Client(console.url)
    dsl.login("dsl")
    dsl.get("/dpia")
    status, page = dsl.post("/dpia")
    assert status == 200 and "Pack written to" in page
    assert (console.data.root / "dpia" / "notice-pupils.md").exists()
    [written] = rows(console, "dpia_written")
    assert written["actor"] == "dsl"
    assert "Nothing: the settings are the same" in dsl.get("/dpia")[1]

    status, _ = dsl.post("/settings", {"events_days": "90", "incidents_days": "2190"})
    assert status == 200
    page = html.unescape(dsl.get("/dpia")[1])
    assert "<li>Retention for events changed from 365 to 90 days</li>" in page
    assert "We keep what it finds for about 3 months." in page
