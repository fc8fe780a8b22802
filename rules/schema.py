"""The validated policy: frozen dataclasses, built only by ``rules.load``.

Every entry keeps ``where`` ("file:line") so later errors and alerts can point a
technician at the line to edit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

CATEGORIES = (
    "extremism",
    "grooming",
    "self_harm",
    "suicide",
    "bullying",
    "discrimination",
    "drugs",
    "pornography",
    "violence",
    "gambling",
    "illegal",
)
BOUNDARIES = ("word", "start", "end", "none")
SENSORS = ("keyboard", "browser", "usb")
USB_ACTIONS = ("allow", "block", "reject")
URL_KINDS = ("domain", "prefix", "pattern")

Boundary = Literal["word", "start", "end", "none"]
UrlKind = Literal["domain", "prefix", "pattern"]
UsbAction = Literal["allow", "block", "reject"]


class PolicyError(ValueError):
    """A policy file (or bundle, or imported list) is wrong; the message names where."""


@dataclass(frozen=True, slots=True)
class Term:
    """A list entry: a literal ``phrase``, or a pattern (``rules.pattern``) whose source is
    ``phrase``, written against the word ``classes``. A pattern's expansion (``rules.pattern
    .expand_term``) is made when compiling and not kept: 80,000 phrases, the bulk of a loaded
    policy's memory on a PC, for 0.3 s of CPU."""

    phrase: str
    weight: int
    why: str
    boundary: Boundary = "word"
    where: str = ""
    example: str = ""  # a text the entry must catch (checked by a unit test)
    classes: Mapping[str, tuple[str, ...]] | None = field(default=None, compare=False,
                                                          repr=False)  # None: a literal
    split: bool = False  # a large pattern is stored as adjacent pieces

    @property
    def is_pattern(self) -> bool:
        return self.classes is not None


@dataclass(frozen=True, slots=True)
class Combo:
    """All of ``terms`` within ``window`` words adds ``weight``."""

    terms: tuple[str, ...]
    weight: int
    window: int
    why: str
    boundaries: tuple[Boundary, ...] = ()  # one per term; "word" for each by default
    where: str = ""
    example: str = ""
    alternatives: tuple[tuple[str, ...], ...] = ()  # per part, its phrases (patterns expanded)


@dataclass(frozen=True)
class Category:
    name: str
    title: str
    enabled: bool
    threshold: int
    window: int  # words over which weights add up
    terms: tuple[Term, ...]
    combos: tuple[Combo, ...] = ()
    where: str = ""


@dataclass(frozen=True)
class Guard:
    """Context that lowers (or, with a large negative weight, cancels) alerts of
    ``categories`` in the same sentence, within ``within`` words of the alert's terms:
    a game ("kill you at fortnite"), a lesson, a book title, an idiom."""

    term: Term  # the pattern and its expansion; ``term.weight`` is negative
    categories: tuple[str, ...]
    within: int


@dataclass(frozen=True)
class WordClass:
    name: str
    words: tuple[str, ...]  # alternatives, each itself a pattern without gaps
    why: str
    where: str = ""


@dataclass(frozen=True, slots=True)
class Exemplar:
    """A sentence that stands for a category (or for innocent school text) in the semantic
    stage; an alert names the closest one so the DSL sees why it fired."""

    id: str
    category: str  # a category name, or "innocent"
    text: str
    why: str
    where: str = ""


@dataclass(frozen=True)
class SemanticHead:
    """A linear classifier over the sentence vector (``semantic/head.toml``, written by
    ``rules/train_head.py``): one row of 384 weights and a bias per label (the categories
    and "innocent"); softmax gives each label's probability. Where the vote does not alert,
    the label with the highest mean of its vote share and this probability alerts if it is
    a category and the mean reaches ``threshold`` (or its own in ``thresholds``)."""

    labels: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]  # one row per label
    bias: tuple[float, ...]
    threshold: float
    thresholds: tuple[tuple[str, float], ...] = ()  # per category, overriding ``threshold``
    trained: str = ""  # how and from what it was trained

    def threshold_for(self, category: str) -> float:
        return dict(self.thresholds).get(category, self.threshold)


@dataclass(frozen=True)
class Semantic:
    """The semantic stage: a sentence model (named by file and SHA-256, delivered apart
    from the bundle) and a bank of exemplars (the curated ones with their why, and the
    reference texts of ``semantic/reference/``) that a sentence is compared with: its
    ``k`` nearest exemplars vote, weighted by ``exp(temperature * similarity)``, and a
    category alerts when its share of the vote reaches ``vote`` (or its own in ``votes``)."""

    model: str
    model_sha256: str
    min_words: int
    exemplars: Sequence[Exemplar]  # a tuple; on a PC packed (agent/policy_slim.py)
    k: int = 7
    temperature: float = 10.0
    vote: float = 0.8
    votes: tuple[tuple[str, float], ...] = ()  # per category, overriding ``vote``
    min_similarity: float = 0.0  # the closest exemplar of the category must be this close
    context: float = 0.0  # > 0: a sentence is also judged joined with the one before it,
    # at thresholds of at least this (0: off)
    severities: tuple[tuple[str, int], ...] = ()  # per category; else the incident rules
    enabled: bool = True
    head: SemanticHead | None = None  # a trained classifier beside the vote, if shipped

    def vote_for(self, category: str) -> float:
        return dict(self.votes).get(category, self.vote)


@dataclass(frozen=True)
class UrlRule:
    kind: UrlKind
    value: str
    category: str
    why: str
    where: str = ""


@dataclass(frozen=True)
class SearchEngine:
    name: str
    hosts: tuple[str, ...]  # "bing.com" covers subdomains; "google.*" any public suffix
    paths: tuple[str, ...]  # path prefixes that carry a query
    params: tuple[str, ...]  # query-string keys, first present wins


@dataclass(frozen=True)
class UsbRule:
    action: UsbAction
    vendor: str  # four hex digits or "*"
    product: str
    serial: str | None
    with_interface: tuple[str, ...]  # "cc:ss:pp" with "*" wildcards; all must match
    name: str
    why: str
    accounts: tuple[str, ...] = ()  # an allow may be limited to these accounts
    where: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    sensors: tuple[str, ...]
    categories: tuple[str, ...]  # keyword categories (keyboard and search queries)
    url_categories: tuple[str, ...]
    full_browsing_log: bool = False
    semantic: bool = True  # the semantic stage, where the policy has one


@dataclass(frozen=True)
class Assignment:
    """profiles.toml `[[assign]]`: an OS account, or members of a local group, get a profile."""

    profile: str
    account: str = ""
    group: str = ""


@dataclass(frozen=True)
class SeverityRule:
    category: str  # a category name or "*"
    min_score: int
    severity: int  # 1 (low) to 5 (most severe)


@dataclass(frozen=True)
class Escalation:
    categories: tuple[str, ...]
    within_minutes: int
    raise_by: int
    why: str
    # Optional order of signal sources ("url", "search", "keyword"): the first seen, then the
    # second later. Without it, any two distinct (source, category) signals combine.
    sequence: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recurrence:
    """The same category on `days` different days within `within_days`: raise by `raise_by`."""

    category: str
    days: int
    within_days: int
    raise_by: int
    why: str


# Severities of candidates that are not detections, as [fixed_severity] may set them.
FIXED_SEVERITY = {
    "usb_blocked": 3, "usb_rejected": 4, "silent_agent": 2, "capture_missing": 3,
    "test_alert": 1, "tampering_gap": 3, "tampering": 4,
}  # fmt: skip


@dataclass(frozen=True)
class IncidentRules:
    severities: tuple[SeverityRule, ...]
    group_window_minutes: int
    silent_agent_minutes: int
    escalations: tuple[Escalation, ...] = ()
    recurrences: tuple[Recurrence, ...] = ()
    fixed: tuple[tuple[str, int], ...] = tuple(FIXED_SEVERITY.items())


@dataclass(frozen=True)
class Exemption:
    id: str
    group: str
    start: datetime
    end: datetime
    reason: str
    approver: str
    terms: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    where: str = ""
    exemplars: tuple[str, ...] = ()  # semantic exemplar ids whose alerts it suppresses

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end


# Never captured, whatever a policy says: a picture of the screen for these could itself be
# an indecent image of a child (sexual grooming, pornography) or illegal content.
NEVER_SCREENSHOT = ("grooming", "pornography", "illegal")
STAFF_PROFILE = "staff"  # staff are never captured either


@dataclass(frozen=True)
class ScreenshotRule:
    """screenshots.toml `[[rule]]`: in this profile, a detection of one of these categories
    at or above this severity takes a screenshot of the window it names."""

    profile: str
    categories: tuple[str, ...]
    min_severity: int
    where: str = ""


@dataclass(frozen=True)
class Screenshots:
    enabled: bool
    rules: tuple[ScreenshotRule, ...]
    max_width: int = 1280  # downscaled to at most this many pixels across
    budget_mb: int = 20  # the PC's waiting screenshots; past this the oldest go (counted)
    retention_days: int = 0  # 0: as the collector's event retention

    def min_severity(self, profile: str, category: str) -> int | None:
        """The severity from which a detection is captured, or None: never."""
        if not self.enabled or category in NEVER_SCREENSHOT or profile == STAFF_PROFILE:
            return None
        found = [r.min_severity for r in self.rules
                 if r.profile == profile and category in r.categories]  # fmt: skip
        return min(found) if found else None


@dataclass(frozen=True)
class Policy:
    version: int
    notice: str
    context_words: int
    context_chars: int
    categories: tuple[Category, ...]
    urls: tuple[UrlRule, ...]
    search_engines: tuple[SearchEngine, ...]
    usb: tuple[UsbRule, ...]
    profiles: tuple[Profile, ...]
    incidents: IncidentRules
    exemptions: tuple[Exemption, ...] = ()
    guards: tuple[Guard, ...] = ()
    classes: tuple[WordClass, ...] = ()
    semantic: Semantic | None = None
    assignments: tuple[Assignment, ...] = ()  # first account match, then first group match
    default_profile: str = "ks2"  # for an account no assignment names
    screenshots: Screenshots | None = None  # screenshots.toml; None: never captured
    evidence_key: bytes = b""  # the collector's X25519 public key (evidence_key.toml), raw

    def category(self, name: str) -> Category:
        for cat in self.categories:
            if cat.name == name:
                return cat
        raise PolicyError(f"no category {name!r}")

    def profile(self, name: str) -> Profile:
        for prof in self.profiles:
            if prof.name == name:
                return prof
        known = ", ".join(p.name for p in self.profiles)
        raise PolicyError(f"no profile {name!r} (known: {known})")
