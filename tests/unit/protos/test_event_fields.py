"""The contract an event's strings keep (protos/event_fields.py): what the agent's own code
makes passes; what only a taken-over PC would send is named by field, never quoted."""

from __future__ import annotations

import pytest

from protos import event_fields, events_pb2
from protos.event_fields import Vocabulary, clean, flaw

pytestmark = pytest.mark.unit

WORDS = Vocabulary(
    categories=frozenset({"grooming", "bullying"}),
    url_categories=frozenset({"extremism"}),
    search_engines=frozenset({"google"}),
    exemptions=frozenset({"ks2-history"}),
)


def kw(**fields: object) -> events_pb2.Event:
    base: dict[str, object] = {"category": "grooming", "list": "keywords/grooming",
                               "source": "keyboard", "terms": ["send me a photo"],
                               "context": "pls send me a photo\tnow\n"}  # fmt: skip
    base.update(fields)
    return events_pb2.Event(account="pupil.amy", event_id="ab12",
                            keyword=events_pb2.KeywordDetection(**base))  # type: ignore[arg-type]  # fmt: skip


def test_what_an_honest_agent_sends_passes() -> None:
    assert flaw(kw(), WORDS) is None
    assert flaw(kw(terms=["(i|we|ill) ...2 kill you" * 60]), WORDS) is None  # a long pattern
    assert flaw(kw(list="semantic/grooming", source="search:google"), WORDS) is None
    assert flaw(kw(list="semantic/grooming", semantic_part="average"), WORDS) is None
    shot = kw()
    shot.screenshot_sha256 = bytes(32)
    assert flaw(shot, WORDS) is None
    assert flaw(kw(source="search:unknown", exemption="ks2-history"), WORDS) is None
    url = events_pb2.Event(url=events_pb2.UrlDetection(
        category="extremism", list="urls:domain", url="https://x.example/", browser="firefox",
    ))  # fmt: skip
    assert flaw(url, WORDS) is None
    log = events_pb2.Event(url=events_pb2.UrlDetection(list="browsing_log", url="https://a/"))
    assert flaw(log, WORDS) is None
    sensors = [events_pb2.SensorHealth(name="usb", state="crashed"),
               events_pb2.SensorHealth(name="keyboard", state="degraded", detail="no helper\n"),
               events_pb2.SensorHealth(name="browser", state="failed"),
               # the watchdog sheds a sensor, and reports itself (agent/selfwatch.py)
               events_pb2.SensorHealth(name="browser", state="shed", detail="used 90% ..."),
               events_pb2.SensorHealth(name="watchdog", state="over_limit")]  # fmt: skip
    beat = events_pb2.Event(heartbeat=events_pb2.Heartbeat(policy_version="7", sensors=sensors))
    assert flaw(beat, WORDS) is None


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (kw(category="<script>"), "keyword.category"),
        (kw(category="x" * 500), "keyword.category"),
        (kw(category="grooming\x07"), "keyword.category"),
        (kw(category="sexting"), "keyword.category"),
        (kw(category="extremism", list="keywords/extremism"), "keyword.category"),  # URL only
        (kw(list="keywords/bullying"), "keyword.list"),
        (kw(source="search:<b>evil</b>"), "keyword.source"),
        (kw(context="\x1b[31mred"), "keyword.context"),
        (kw(context="y" * 301), "keyword.context"),
        (kw(window_title="a\x00b"), "keyword.window_title"),
        (kw(terms=["t"] * 101), "keyword.terms"),
        (kw(terms=["t" * 4001]), "keyword.terms"),
        (kw(exemption="made-up"), "keyword.exemption"),
        (kw(semantic_part="<img>"), "keyword.semantic_part"),
        (events_pb2.Event(screenshot_sha256=b"x" * 31, keyword=events_pb2.KeywordDetection()),
         "screenshot_sha256"),
        (events_pb2.Event(account="a\rb", keyword=events_pb2.KeywordDetection()), "account"),
        (events_pb2.Event(url=events_pb2.UrlDetection(category="grooming", list="urls:domain")),
         "url.category"),
        (events_pb2.Event(url=events_pb2.UrlDetection(category="extremism", list="browsing_log")),
         "url.category"),
        (events_pb2.Event(url=events_pb2.UrlDetection(category="extremism", list="mine")),
         "url.list"),
        (events_pb2.Event(heartbeat=events_pb2.Heartbeat(
            sensors=[events_pb2.SensorHealth(name="<script>", state="running")])),
         "heartbeat.sensors.name"),
        (events_pb2.Event(heartbeat=events_pb2.Heartbeat(policy_version="7; drop")),
         "heartbeat.policy_version"),
        (events_pb2.Event(usb=events_pb2.UsbDecision(vendor_id="zz")), "usb.vendor_id"),
        (events_pb2.Event(usb=events_pb2.UsbDecision(product="\x9b2J")), "usb.product"),
    ],
)  # fmt: skip
def test_what_only_a_taken_over_pc_sends_is_named_by_field(
    event: events_pb2.Event, field: str
) -> None:
    found = flaw(event, WORDS)
    assert found is not None and found.split(":")[0] == field
    assert "<script>" not in found and "\x07" not in found and "sexting" not in found


def test_clean_makes_free_text_keep_the_contract() -> None:
    assert clean("tab\tand\nnewline", 100) == "tab\tand\nnewline"
    assert clean("bell\x07 esc\x1b[31m c1\x9b", 100) == "bell  esc [31m c1 "
    assert clean("\u00e9\u4e2d\u200b", 100) == "\u00e9\u4e2d\u200b"  # printable or format: kept
    assert len(clean("x" * 500, event_fields.WINDOW_TITLE)) == event_fields.WINDOW_TITLE
    assert flaw(kw(window_title=clean("a\x00b" * 200, event_fields.WINDOW_TITLE)), WORDS) is None
