"""One visit's URL match -> the events that leave the PC. Pure: no I/O.

- every URL list category that matched: one `UrlDetection` (with the few URLs visited just
  before as context);
- every keyword alert in a search query: one `KeywordDetection` with source
  `search:<engine>` and the alert's capped context (never the rest of the query);
- nothing else, unless the account's profile has `full_browsing_log = true`: then an
  unmatched visit is an `UrlDetection` with list `browsing_log`, category "" and severity 0.

An alert or URL hit suppressed by an exemption is still recorded (severity 1, exemption id).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.browser_history import BrowserProfile, Visit
from agent.detector import WindowInfo, alert_event, severity_of
from protos import event_fields as fields
from protos import events_pb2
from protos.event_fields import clean
from rules.match import Alert
from rules.schema import Policy, Profile
from rules.semantic import SemanticAlert
from rules.urls import UrlResult

CONTEXT_URLS = 3  # URLs visited just before a match, sent with it
SUPPRESSED_SEVERITY = 1
FULL_LOG = "browsing_log"


@dataclass
class VisitContext:
    """The few previous URLs of one browser profile, in memory only."""

    urls: deque[str] = field(default_factory=lambda: deque(maxlen=CONTEXT_URLS))

    def previous(self) -> list[str]:
        return list(self.urls)

    def push(self, url: str) -> None:
        self.urls.append(url)


def visit_events(visit: Visit, result: UrlResult, *, policy: Policy, profile: Profile,
                 browser: BrowserProfile, account: str, previous: Sequence[str],
                 semantic: Sequence[SemanticAlert] = ()) -> list[events_pb2.Event]:  # fmt: skip
    events: list[events_pb2.Event] = []
    seen: set[str] = set()
    for hit in result.hits:
        if hit.category in seen:
            continue  # one detection per category: the first rule that matched names it
        seen.add(hit.category)
        exemption = hit.exemptions[0] if hit.suppressed and hit.exemptions else ""
        severity = (SUPPRESSED_SEVERITY if hit.suppressed
                    else severity_of(policy, hit.category, 0))  # fmt: skip
        events.append(_url_event(visit, browser, account, severity, list(previous),
                                 category=hit.category, list_name=f"urls:{hit.kind}",
                                 rule=hit.rule, exemption=exemption))  # fmt: skip
    said = {a.category for a in result.alerts}
    # The detector's own path: same list names, same caps; the semantic stage's alerts on
    # the query only where the patterns said nothing of that category.
    found: list[Alert | SemanticAlert] = [*result.alerts]
    found += [a for a in semantic if a.category not in said]
    for alert in found:
        event = alert_event(alert, WindowInfo(app=browser.browser), account, policy,
                            source=f"search:{result.engine or 'unknown'}")  # fmt: skip
        if alert.suppressed:
            event.severity = SUPPRESSED_SEVERITY
        events.append(event)
    if not events and profile.full_browsing_log:
        events.append(_url_event(visit, browser, account, 0, [], category="",
                                 list_name=FULL_LOG, rule="", exemption=""))  # fmt: skip
    return events


def _url_event(visit: Visit, browser: BrowserProfile, account: str, severity: int,
               previous: list[str], *, category: str, list_name: str, rule: str,
               exemption: str) -> events_pb2.Event:  # fmt: skip
    return events_pb2.Event(
        severity=severity, account=account,
        url=events_pb2.UrlDetection(
            category=category, list=list_name, url=clean(visit.url, fields.URL),
            rule=clean(rule, fields.URL), browser=clean(browser.browser, fields.BROWSER),
            profile=clean(browser.name, fields.PROFILE),
            previous_urls=[clean(u, fields.URL) for u in previous[-fields.PREVIOUS_URLS:]],
            visited_unix_ms=visit.visited_unix_ms, exemption=exemption),
    )  # fmt: skip
