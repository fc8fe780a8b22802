"""URL rules, search-query extraction, and the USB allowlist."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.compile import Compiled
from rules.schema import Policy
from rules.urls import UrlMatcher, split_url
from rules.usb import UsbDevice, decide

pytestmark = pytest.mark.unit
# Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])  # fmt: skip

URL_CASES = [
    ("https://www.bet365.com/sport", {"gambling"}),
    ("https://sports.bet365.com", {"gambling"}),  # parent domain
    ("bet365.com.evil.example", set()),  # not a parent
    ("https://video.example/channel/hate-club", {"extremism"}),  # prefix
    ("https://forum.example/pro-ana-tips", {"self_harm"}),  # pattern
    ("https://www.bbc.co.uk/news", set()),
]


@pytest.mark.parametrize(("url", "cats"), URL_CASES)
def test_url_rules(ks2: Compiled, url: str, cats: set[str]) -> None:
    assert {h.category for h in UrlMatcher(ks2).match(url).hits} == cats


QUERY_CASES = [
    ("https://www.google.co.uk/search?q=how+to+k1ll+myself", "google", "suicide"),
    ("https://www.bing.com/search?q=send+nudes&form=QBLH", "bing", "grooming"),
    ("https://duckduckgo.com/?q=our+little+secret&ia=web", "duckduckgo", "grooming"),
    ("https://www.youtube.com/results?search_query=join+the+caliphate", "youtube", "extremism"),
    ("https://uk.search.yahoo.com/search?p=buy+weed+near+me", "yahoo", "drugs"),
    ("https://www.ecosia.org/search?q=online+casino+free+spins", "ecosia", "gambling"),
    ("https://www.kiddle.co/s.php?q=i+want+to+die", "kiddle", "suicide"),
]


@pytest.mark.parametrize(("url", "engine", "cat"), QUERY_CASES)
def test_search_queries_go_through_keywords(ks2: Compiled, url: str, engine: str,
                                            cat: str) -> None:  # fmt: skip
    result = UrlMatcher(ks2).match(url)
    assert result.engine == engine
    assert cat in {a.category for a in result.alerts}


def test_harmless_search_sends_nothing(ks2: Compiled) -> None:
    result = UrlMatcher(ks2).match("https://www.google.com/search?q=romans+homework")
    assert not result.matched and result.query is None


def test_staff_profile_sees_only_its_url_categories(policy: Policy) -> None:
    staff = UrlMatcher(Compiled(policy, "staff"))
    assert not staff.match("https://www.bet365.com").matched
    assert staff.match("https://www.pornhub.com").matched


@PROPERTY
@given(st.text(max_size=80))
def test_fuzz_url_parser_never_raises(ks2: Compiled, text: str) -> None:
    split_url(text)
    UrlMatcher(ks2).match(text)
    UrlMatcher(ks2).match("https://www.google.com/search?q=" + text)


MERILOCK = ("0951", "1666", "MERILOCK-DSL-0001")


@pytest.mark.parametrize(("device", "action"), [
    (UsbDevice(*MERILOCK, ("08:06:50",), "dsl"), "allow"),
    (UsbDevice(*MERILOCK, ("08:06:50",), "pupil"), "block"),
    (UsbDevice("0951", "1666", "OTHER", ("08:06:50",), "dsl"), "block"),
    (UsbDevice(*MERILOCK, ("08:06:50", "03:01:01"), "dsl"), "reject"),  # BadUSB
    (UsbDevice(*MERILOCK, ("08:06:50", "02:06:00"), "dsl"), "reject"),  # storage + network
    (UsbDevice("abcd", "0001", "X", ("08:06:50",)), "block"),  # implicit storage block
    (UsbDevice("046d", "c52b", "", ("03:01:01", "03:01:02")), "allow"),  # keyboard + mouse
    (UsbDevice("0a12", "0001", "", ("e0:01:01",)), "reject"),  # Bluetooth rule
    (UsbDevice("1234", "5678", "", ("0e:01:00",)), "allow"),  # webcam
])  # fmt: skip
def test_usb_allowlist(policy: Policy, device: UsbDevice, action: str) -> None:
    assert decide(policy.usb, device).action == action
