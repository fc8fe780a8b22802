"""What the strings of an event may be: the contract an honest agent keeps and the collector checks.

A PC holds its own signing key, so a PC someone has taken over can sign any event it likes.
Nothing it chooses may become a label on a page: category and list names, sources, exemption
ids and sensor names must come from a policy the collector published (`Vocabulary`) or from the
small fixed sets below, and every free-text field (typed context, window titles, URLs, device
names) has a length bound and no control characters other than tab and newline.

The agent keeps to it by construction: identifiers come from its signed policy, and free text
goes through `clean` (control characters become a space, then the cap). So an event that
breaks it was not made by our agent code: the collector stores it (it is signed and chained,
so it is evidence), files a tampering record and never judges it as a detection
(`collector/intake/verifier_worker.py`, `collector/intake/ingest.py`).

Control characters are refused rather than escaped because the stored bytes are signed: the
collector cannot change them, only decide what it makes of them, and a bell or an ANSI escape
in a window title would otherwise reach terminals (the collector's CLI), CSV and PDF exports.
Tab and newline are ordinary text. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from protos import events_pb2

# C0 and C1 controls and DEL, except tab (\x09) and newline (\x0a).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Bounds on free text, a little above what the agent sends, so an honest event never trips one.
ACCOUNT = 256
EVENT_ID = 64
CONTEXT = 300  # rules/load.py caps a policy's context_chars at 300
TERM = 4000  # a term is the matched pattern's source: up to 1,730 characters in the shipped lists
TERMS = 100
APPLICATION = 200
WINDOW_TITLE = 300
IDENTIFIER = 200  # exemplar ids, versions, rule names
URL = 65536  # agents before this contract sent URLs uncut; a long tracking URL is honest
PREVIOUS_URLS = 10
BROWSER = 64
PROFILE = 256
DEVICE_TEXT = 256  # USB serial, manufacturer, product (a USB string descriptor is shorter)
DEVICE_PATH = 1024
INTERFACES = 64
DETAIL = 4000
NOTE = 1000
SENSORS = 16

SENSOR_NAMES = frozenset({"keyboard", "browser", "usb", "watchdog"})  # + agent/selfwatch.py
SENSOR_STATES = frozenset({
    "starting", "running", "degraded", "stopped", "unavailable", "crashed", "failed", "shed",
    "over_limit",
})  # agent/supervisor.py (shed: by the watchdog), what a sensor reports (the keyboard
#    broker: degraded) and the watchdog's own line (over_limit)
SEMANTIC_PARTS = frozenset({"", "vote", "average"})  # rules/semantic.py SemanticAlert.part
SCREENSHOT_HASH = (0, 32)  # Event.screenshot_sha256: none, or a SHA-256
KEYWORD_LISTS = ("keywords/", "semantic/")  # then the category
URL_LISTS = frozenset({"urls:domain", "urls:prefix", "urls:pattern"})
BROWSING_LOG = "browsing_log"  # an unmatched visit, under a full-browsing-log profile
KEYBOARD = "keyboard"
SEARCH = "search:"  # then the search engine's name, or "unknown"
UNKNOWN_ENGINE = "unknown"
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_INTERFACE = re.compile(r"[0-9a-fA-F*]{2}:[0-9a-fA-F*]{2}:[0-9a-fA-F*]{2}")


@dataclass(frozen=True)
class Vocabulary:
    """The names policies define, which an event may carry (collector/intake/vocabulary.py builds it
    from every policy the collector published and the one shipped with the agent)."""

    categories: frozenset[str] = frozenset()  # keyword categories
    url_categories: frozenset[str] = frozenset()
    search_engines: frozenset[str] = frozenset()
    exemptions: frozenset[str] = frozenset()

    def __or__(self, other: Vocabulary) -> Vocabulary:
        return Vocabulary(
            self.categories | other.categories,
            self.url_categories | other.url_categories,
            self.search_engines | other.search_engines,
            self.exemptions | other.exemptions,
        )

    @property
    def all_categories(self) -> frozenset[str]:
        return self.categories | self.url_categories


def clean(text: str, limit: int) -> str:
    """Free text as an event may carry it: control characters (but tab and newline) made
    spaces, then cut to `limit` characters."""
    if not text.isprintable():
        text = _CONTROL.sub(" ", text)
    return text[:limit]


def _text(name: str, value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"{name}: {len(value)} characters, over the bound of {limit}"
    if not value.isprintable() and _CONTROL.search(value):  # isprintable: C speed, most pass
        return f"{name}: holds a control character"
    return None


def _texts(name: str, values: Iterable[str], limit: int, count: int) -> str | None:
    values = list(values)
    if len(values) > count:
        return f"{name}: {len(values)} entries, over the bound of {count}"
    for v in values:
        if found := _text(name, v, limit):
            return found
    return None


def _exemption(name: str, value: str, vocab: Vocabulary) -> str | None:
    if not value:
        return None
    if found := _text(name, value, DETAIL):
        return found
    if any(x not in vocab.exemptions for x in value.split(",")):
        return f"{name}: not an exemption of any policy this collector published"
    return None


def flaw(event: events_pb2.Event, vocab: Vocabulary) -> str | None:
    """The first field of `event` an honest agent would never send, and why (naming the
    field, never quoting it); None when every field keeps to the contract."""
    if _sound(event, vocab):
        return None
    return _why(event, vocab)


def _fits(value: str, limit: int) -> bool:
    return len(value) <= limit and value.isprintable()  # False may still be fine: see _text


def _sound(event: events_pb2.Event, vocab: Vocabulary) -> bool:
    """A quick yes for the common events (heartbeats are most of the traffic, then
    detections): every verifier checks about 100,000 events a second, and `_why`'s detail
    costs three times as much. False means "look closer", not "broken" (a tab is fine)."""
    account, event_id = event.account, event.event_id
    if not (len(account) <= ACCOUNT and len(event_id) <= EVENT_ID and account.isprintable()
            and event_id.isprintable()):  # fmt: skip
        return False
    kind = event.WhichOneof("payload")
    if kind == "heartbeat":  # inline: a function call here costs as much as the checks
        h = event.heartbeat
        sensors = h.sensors
        for s in sensors:
            detail = s.detail
            if (s.name not in SENSOR_NAMES or s.state not in SENSOR_STATES
                    or len(detail) > DETAIL or not detail.isprintable()):  # fmt: skip
                return False
        version, agent = h.policy_version, h.agent_version
        return (
            len(sensors) <= SENSORS
            and len(agent) <= IDENTIFIER
            and agent.isprintable()
            and (not version or (version.isdigit() and len(version) <= 20))
        )
    if kind == "keyword":
        k = event.keyword
        category, source = k.category, k.source
        return (
            category in vocab.categories
            and k.list in (KEYWORD_LISTS[0] + category, KEYWORD_LISTS[1] + category)
            and (source == KEYBOARD or (source[len(SEARCH):] in vocab.search_engines
                 and source.startswith(SEARCH)))
            and not k.exemption
            and len(k.terms) <= TERMS
            and all(_fits(t, TERM) for t in k.terms)
            and _fits(k.context, CONTEXT)
            and _fits(k.application, APPLICATION)
            and _fits(k.window_title, WINDOW_TITLE)
            and _fits(k.exemplar, IDENTIFIER)
            and k.semantic_part in SEMANTIC_PARTS
            and len(event.screenshot_sha256) in SCREENSHOT_HASH
        )
    return False


def _why(event: events_pb2.Event, vocab: Vocabulary) -> str | None:
    found = _text("account", event.account, ACCOUNT) or _text("event_id", event.event_id, EVENT_ID)
    if found:
        return found
    if len(event.screenshot_sha256) not in SCREENSHOT_HASH:
        return "screenshot_sha256: not a SHA-256"
    kind = event.WhichOneof("payload")
    if kind == "keyword":
        return _keyword(event.keyword, vocab)
    if kind == "url":
        return _url(event.url, vocab)
    if kind == "heartbeat":
        return _heartbeat(event.heartbeat)
    if kind == "usb":
        return _usb(event.usb)
    if kind == "status":
        return _text("status.detail", event.status.detail, DETAIL)
    if kind == "test_alert":
        t = event.test_alert
        return _text("test_alert.requested_by", t.requested_by, ACCOUNT) or _text(
            "test_alert.note", t.note, NOTE
        )
    return None


def _keyword(k: events_pb2.KeywordDetection, vocab: Vocabulary) -> str | None:
    if k.category not in vocab.categories:
        return "keyword.category: not a category of any policy this collector published"
    if k.list not in (KEYWORD_LISTS[0] + k.category, KEYWORD_LISTS[1] + k.category):
        return "keyword.list: not the list of its category (keywords/ or semantic/)"
    source = k.source
    if source != KEYBOARD and not (
        source.startswith(SEARCH)
        and (source[len(SEARCH):] in vocab.search_engines or source[len(SEARCH):] == UNKNOWN_ENGINE)
    ):
        return "keyword.source: not the keyboard nor a search engine of the policy"
    return (
        _texts("keyword.terms", k.terms, TERM, TERMS)
        or _text("keyword.context", k.context, CONTEXT)
        or _text("keyword.application", k.application, APPLICATION)
        or _text("keyword.window_title", k.window_title, WINDOW_TITLE)
        or _text("keyword.exemplar", k.exemplar, IDENTIFIER)
        or _exemption("keyword.exemption", k.exemption, vocab)
        or (None if k.semantic_part in SEMANTIC_PARTS
            else "keyword.semantic_part: not a part of the semantic stage")
    )


def _url(u: events_pb2.UrlDetection, vocab: Vocabulary) -> str | None:
    if u.list == BROWSING_LOG:
        if u.category:
            return "url.category: a browsing-log visit carries no category"
    elif u.list not in URL_LISTS:
        return "url.list: not a URL list kind (urls:domain, urls:prefix, urls:pattern)"
    elif u.category not in vocab.url_categories:
        return "url.category: not a URL category of any policy this collector published"
    return (
        _text("url.url", u.url, URL)
        or _text("url.rule", u.rule, URL)
        or _text("url.browser", u.browser, BROWSER)
        or _text("url.profile", u.profile, PROFILE)
        or _texts("url.previous_urls", u.previous_urls, URL, PREVIOUS_URLS)
        or _exemption("url.exemption", u.exemption, vocab)
    )


def _heartbeat(h: events_pb2.Heartbeat) -> str | None:
    if len(h.sensors) > SENSORS:
        return f"heartbeat.sensors: {len(h.sensors)} entries, over the bound of {SENSORS}"
    for s in h.sensors:
        if s.name not in SENSOR_NAMES:
            return "heartbeat.sensors.name: not a sensor the agent has"
        if s.state not in SENSOR_STATES:
            return "heartbeat.sensors.state: not a state a sensor reports"
        if found := _text("heartbeat.sensors.detail", s.detail, DETAIL):
            return found
    if h.policy_version and not (h.policy_version.isdigit() and len(h.policy_version) <= 20):
        return "heartbeat.policy_version: not a version number"
    return _text("heartbeat.agent_version", h.agent_version, IDENTIFIER)


def _usb(d: events_pb2.UsbDecision) -> str | None:
    for name, value in (("usb.vendor_id", d.vendor_id), ("usb.product_id", d.product_id)):
        if value and not _HEX4.fullmatch(value):
            return f"{name}: not four hex digits"
    if len(d.interfaces) > INTERFACES:
        return f"usb.interfaces: {len(d.interfaces)} entries, over the bound of {INTERFACES}"
    if any(not _INTERFACE.fullmatch(i) for i in d.interfaces):
        return "usb.interfaces: not class:subclass:protocol in hex"
    return (
        _text("usb.serial", d.serial, DEVICE_TEXT)
        or _text("usb.manufacturer", d.manufacturer, DEVICE_TEXT)
        or _text("usb.product", d.product, DEVICE_TEXT)
        or _text("usb.rule", d.rule, DEVICE_TEXT)
        or _text("usb.device_path", d.device_path, DEVICE_PATH)
        or _text("usb.not_enforced", d.not_enforced, DETAIL)
    )
