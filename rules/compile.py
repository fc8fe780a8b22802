"""Compile the keyword lists of one profile into automata and entry tables.

Every list phrase is normalised exactly as typed text is, so evasion tricks in the text
and spelling choices in the list meet in the same squeezed form. One automaton holds all
terms and combination parts of the profile's enabled categories.
"""

from __future__ import annotations

import gc
import pickle
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

import ahocorasick  # type: ignore[import-not-found]  # C library without type stubs

from rules.automaton import Automaton
from rules.bulk_gate import Gate
from rules.entries import Entry, EntryTable
from rules.normalise import fast_squeeze, squeeze_parts
from rules.pattern import expand, expand_term
from rules.schema import Boundary, Category, Exemption, Policy, PolicyError
from rules.sequences import Members, SequenceRule, merged, trigger

MAX_PHRASE = 200  # squeezed characters; keeps the keystroke history bounded


@dataclass(frozen=True, slots=True)
class ComboRule:
    category: int
    parts: tuple[str, ...]
    weight: int
    window: int


@dataclass(frozen=True, slots=True)
class GuardRule:
    categories: frozenset[int]  # category indices it lowers
    phrase: str
    weight: int  # negative
    within: int  # words from the alert's terms


class Compiled:
    """The matcher's view of a policy for one profile at one time (exemptions are
    evaluated at ``now``; recompile after ``valid_until``)."""

    # What the matcher holds: the same for two profiles with the same categories and active
    # exemptions (KS1 and KS2 usually), so it is built once and shared through ``shared``.
    SHARED = ("combos", "sequences", "guards", "hold_words", "guarded", "guard_reach", "seq_reach",
              "entries", "pattern_count", "automaton", "_bulk", "needs")  # fmt: skip

    def __init__(self, policy: Policy, profile: str, now: datetime | None = None,
                 shared: dict[tuple[object, ...], Compiled] | None = None,
                 build: Callable[[Policy, str, datetime], dict[str, Any]] | None = None,
                 compact: bool = True) -> None:  # fmt: skip
        """``build``: makes the tables elsewhere (``tables()`` of an equal ``Compiled``;
        the agent's service builds them in a child process, agent/policy_child.py).
        ``compact``: lay them out afresh after building (not needed by a process that
        only hands them on)."""
        now = now or datetime.now(UTC)
        prof = policy.profile(profile)
        self.policy, self.profile = policy, prof
        self.categories, self.exemptions, active = _in_force(policy, profile, now)
        edges = [t for e in self.exemptions for t in (e.start, e.end) if t > now]
        self.valid_until: datetime | None = min(edges) if edges else None
        key = _share_key(self.categories, active)
        if shared is not None and key in shared:
            same = shared[key]
            self.__dict__.update({name: getattr(same, name) for name in self.SHARED})
            return
        if shared is not None:
            shared[key] = self
        if build is not None:
            self.__dict__.update(build(policy, profile, now), _bulk=[])
            return
        self._build(policy, active)
        if compact:
            self._compact()

    @staticmethod
    def share_key(policy: Policy, profile: str, now: datetime) -> tuple[object, ...]:
        """What the tables depend on besides the policy: equal keys, equal tables."""
        categories, _, active = _in_force(policy, profile, now)
        return _share_key(categories, active)

    def tables(self) -> dict[str, Any]:
        """What the matcher holds, to hand to another process (see ``build``)."""
        return {n: getattr(self, n) for n in self.SHARED if n != "_bulk"}

    def _build(self, policy: Policy, active: tuple[Exemption, ...]) -> None:
        self.combos: list[ComboRule] = []
        self.sequences: list[SequenceRule] = []
        self.guards: list[GuardRule] = []
        patterns: dict[str, int] = {}
        building: list[list[Entry]] = []
        self._shared: dict[bytes, bytes] = {}  # equal run lengths, one copy
        self._entries: dict[Entry, Entry] = {}
        self._groups: dict[Members, Members] = {}  # a class's members, one copy
        exempt_terms = {_squeezed(t): e.id for e in active for t in e.terms}
        classes = {c.name: c.words for c in policy.classes}
        index = {c.name: i for i, c in enumerate(self.categories)}
        members: dict[tuple[object, ...], int] = {}  # (pid, runs, boundary, exempt) -> key
        self.seq_reach = 0
        for ci, cat in enumerate(self.categories):
            cat_ex = tuple(e.id for e in active if cat.name in e.categories)
            for term in cat.terms:
                ex = cat_ex
                if term.is_pattern and _squeezed(term.phrase) in exempt_terms:
                    ex += (exempt_terms[_squeezed(term.phrase)],)  # a pattern named whole
                parts, gaps = expand_term(term)
                named = _named(parts, gaps, exempt_terms) if exempt_terms and gaps else 0
                if named == 2:  # an exemption names a phrase the pieces make together
                    whole = expand(term.phrase, classes)  # as written, not in pieces
                    parts, gaps = whole.segments, whole.gaps
                if gaps and term.boundary == "word" and not named:
                    parts, gaps = merged(parts, gaps)  # (an exempted phrase must stay one)
                if not gaps:
                    entry = Entry(ci, term.weight, term.boundary, b"", term.phrase, exempt=ex)
                    for phrase in parts[0]:
                        self._add(building, patterns, phrase, entry, exempt_terms)
                    continue
                self._sequence(building, patterns, members, exempt_terms, parts, gaps,
                               SequenceRule(ci, term.phrase, term.weight, gaps, 0, (), ex, ()),
                               term.boundary)  # fmt: skip
            for combo in cat.combos:
                k = len(self.combos)
                self.combos.append(ComboRule(ci, combo.terms, combo.weight, combo.window))
                n = len(combo.terms)
                bounds = combo.boundaries or cast(tuple[Boundary, ...], ("word",) * n)
                alts = combo.alternatives or tuple((t,) for t in combo.terms)
                for part in range(n):
                    entry = Entry(ci, 0, bounds[part], b"", combo.terms[part], k, part, cat_ex)
                    for phrase in alts[part]:
                        self._add(building, patterns, phrase, entry, exempt_terms)
        # Categories whose alerts wait for the end of their sentence (a guard may follow),
        # and how many words past an alert's terms a guard can still reach it.
        self.hold_words = 0
        for guard in policy.guards:
            cats = frozenset(index[c] for c in guard.categories if c in index)
            if not cats:
                continue
            parts, gaps = expand_term(guard.term)  # gaps: pieces of a large one
            if gaps:
                parts, gaps = merged(parts, gaps)
            longest = sum(max(map(_words, phrases)) for phrases in parts)
            self.hold_words = max(self.hold_words, guard.within + longest)
            g = len(self.guards)
            self.guards.append(GuardRule(cats, guard.term.phrase, guard.term.weight,
                                         guard.within))  # fmt: skip
            if gaps:
                self._sequence(building, patterns, members, exempt_terms, parts, gaps,
                               SequenceRule(-1, guard.term.phrase, 0, gaps, 0, (), (), (), g),
                               guard.term.boundary)  # fmt: skip
                continue
            for phrase in parts[0]:
                self._add(building, patterns, phrase,
                          Entry(-1, 0, guard.term.boundary, b"", guard.term.phrase, guard=g),
                          exempt_terms)  # fmt: skip
        self.guarded = frozenset(c for g in self.guards for c in g.categories)
        # Words back that a guard hit may still matter: a waiting alert's terms reach back
        # a category window and it waits at most hold_words more.
        windows = max((c.window for c in self.categories), default=0)
        self.guard_reach = windows + 2 * self.hold_words + 2
        del self._shared, self._entries, self._groups
        self.entries = EntryTable(building)  # per pattern id, what it means
        del building
        self.automaton = Automaton(list(patterns))  # holds the phrases (see ``patterns``)
        self.pattern_count = len(patterns)
        del patterns
        # The bulk path's automaton (``bulk``), built on first use: the agent matches typing
        # with ``automaton`` and short texts with ``match_short``, and never pays for it.
        self._bulk: list[Any] = []  # a box, so profiles sharing this matcher share it too
        # Per pattern, bit 1: every entry needs a word boundary before it; bit 2: after it.
        self.needs = bytes(_needs(tuple(self.entries.boundaries(pid)))
                           for pid in range(self.pattern_count))

    def _compact(self) -> None:
        """Lay what the matcher keeps out afresh. Compiling leaves its tables scattered
        among the freed temporaries of expansion and normalisation, where neither Python's
        allocator nor the C library can return the space: with the shipped lists, 54 MB of
        a PC's memory held 22 MB of tables. A pickled copy, read back after the scattered
        one is freed, fills the gaps densely (the process then keeps about 22 MB)."""
        names = list(self.tables())
        data = pickle.dumps(self.tables(), pickle.HIGHEST_PROTOCOL)
        for n in names:
            delattr(self, n)
        gc.collect()  # (no cycles are expected; a stray one would pin the old copy)
        self.__dict__.update(pickle.loads(data))  # noqa: S301  # bytes made just above

    def _sequence(self, building: list[list[Entry]], patterns: dict[str, int],
                  members: dict[tuple[object, ...], int], exempt_terms: dict[str, str],
                  parts: tuple[tuple[str, ...], ...], gaps: tuple[int, ...],
                  rule: SequenceRule, boundary: Boundary) -> None:  # fmt: skip
        """A pattern with gaps (a term's, or a large guard's pieces): its trigger segment's
        phrases become entries of the rule, the other segments' shared member keys."""
        n, t = len(self.sequences), trigger(parts)
        groups = []
        for seg, phrases in enumerate(parts):
            if seg == t:
                entry = Entry(rule.category, rule.weight, boundary, b"", rule.phrase,
                              exempt=rule.exempt, rule=n, seg=seg)  # fmt: skip
                for phrase in phrases:
                    self._add(building, patterns, phrase, entry, exempt_terms)
                groups.append(Members())
            else:
                group = Members(self._member(building, patterns, members, phrase, boundary,
                                             exempt_terms) for phrase in phrases)  # fmt: skip
                groups.append(self._groups.setdefault(group, group))
        spans = tuple(max(map(_words, phrases)) for phrases in parts)
        self.sequences.append(replace(rule, trigger=t, groups=tuple(groups), spans=spans))
        # How far back the trigger looks for the segments before it, in words.
        back = sum(gaps[i] + spans[i] for i in range(t))
        self.seq_reach = max(self.seq_reach, back + spans[t])

    def _member(self, building: list[list[Entry]], patterns: dict[str, int],
                members: dict[tuple[object, ...], int], phrase: str, boundary: Boundary,
                exempt_terms: dict[str, str]) -> int:  # fmt: skip
        """The member key of a phrase of a sequence's non-trigger segment: one entry per
        (phrase, run lengths, boundary, exemption), whatever the number of rules."""
        made = self._add(building, patterns, phrase, Entry(-1, 0, boundary, b"", ""),
                         exempt_terms, store=False)  # fmt: skip
        pid = patterns[_squeezed(phrase)]
        key = (pid, made.runs, boundary, made.exempt)
        if key not in members:
            members[key] = len(members)
            building[pid].append(replace(made, member=members[key]))
        return members[key]

    def _add(self, building: list[list[Entry]], patterns: dict[str, int], phrase: str,
             entry: Entry, exempt_terms: dict[str, str], store: bool = True) -> Entry:  # fmt: skip
        text, runs = _text_and_runs(phrase)
        if not text:
            raise PolicyError(f"{phrase!r} has no letters or digits to match")
        if len(text) > MAX_PHRASE:
            raise PolicyError(f"{phrase[:40]!r}... is longer than {MAX_PHRASE} characters")
        # Most phrases have no doubled letter: () says so, and lets their entries be shared.
        runs = self._shared.setdefault(runs, runs) if runs else b""
        ex = entry.exempt
        if text in exempt_terms and exempt_terms[text] not in ex:
            ex += (exempt_terms[text],)
        pid = patterns.setdefault(text, len(patterns))
        if pid == len(building):
            building.append([])
        made = replace(entry, runs=runs, exempt=ex, seps=text.count(" "))
        made = self._entries.setdefault(made, made)  # one object for equal entries
        if store and made not in building[pid]:  # "don't" and "dont" in one class: once
            building[pid].append(made)
        return made

    @property
    def bulk(self) -> Any:
        """The bulk path's automaton, in C (``pyahocorasick``; values are pattern ids)."""
        if not self._bulk:
            self._bulk.append(_c_automaton(self.automaton.phrases()))
        return self._bulk[0]

    @property
    def bulk_words(self) -> Any:
        """The bulk path's automaton for text without soft boundaries: a phrase whose every
        meaning needs a word boundary on both sides is stored as " phrase " (value: pattern
        id x 2 + 1) and searched in " text ", so its in-word occurrences ("he" in "the"), the
        bulk of what a plain search finds, never reach Python; others as they are (x 2)."""
        if len(self._bulk) < 2:
            self.bulk  # noqa: B018  # the plain one first: the box holds [plain, words]
            needs = self.needs
            self._bulk.append(_c_automaton(
                (f" {phrase} ", pid * 2 + 1) if needs[pid] == 3 else (phrase, pid * 2)
                for phrase, pid in self.automaton.phrases()))  # fmt: skip
        return self._bulk[1]

    @property
    def bulk_gate(self) -> Gate:
        """Which of a text's hits can matter to an alert (rules/bulk_gate.py)."""
        if len(self._bulk) < 3:
            self.bulk_words  # noqa: B018  # the box holds [plain, words, gate]
            self._bulk.append(Gate(self))
        return cast(Gate, self._bulk[2])

    @property
    def bulk_ready(self) -> bool:
        return bool(self._bulk)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The squeezed phrases, by pattern id (read back from the automaton)."""
        out = [""] * self.pattern_count
        for phrase, pid in self.automaton.phrases():
            out[pid] = phrase
        return tuple(out)

    def exemption(self, ident: str) -> Exemption:
        return next(e for e in self.exemptions if e.id == ident)


def _needs(bounds: tuple[Boundary, ...]) -> int:
    return (all(b in ("word", "start") for b in bounds)
            | all(b in ("word", "end") for b in bounds) << 1)  # fmt: skip


def _c_automaton(words: Iterable[tuple[str, int]]) -> Any:
    """A ``pyahocorasick`` automaton of (key, int value) pairs."""
    auto = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for key, value in words:
        auto.add_word(key, value)
    if len(auto):
        auto.make_automaton()
    return auto


def _named(parts: tuple[tuple[str, ...], ...], gaps: tuple[int, ...],
           names: dict[str, str]) -> int:
    """Whether an exemption names a phrase of this pattern: 1 a phrase of one segment, 2 a
    phrase that adjacent segments with no gap make together (pieces of a large pattern);
    0 neither. Exemptions match whole phrases, so such segments are kept as they are."""
    squeezed = [{_squeezed(p) for p in seg} for seg in parts]

    def spans(t: str, i: int, first: bool) -> bool:
        for p in squeezed[i]:
            if t == p:
                return not first
            if (t.startswith(p + " ") and i + 1 < len(parts) and gaps[i] == 0
                    and spans(t[len(p) + 1 :], i + 1, False)):  # fmt: skip
                return True
        return False

    if any(spans(t, i, True) for t in names for i in range(len(parts))):
        return 2
    return 1 if any(seg & names.keys() for seg in squeezed) else 0


def _text_and_runs(phrase: str) -> tuple[str, bytes]:
    """A phrase as the matcher holds it (``normalise(phrase).text()``, stripped) and its
    characters' run lengths (0 for a gap), or b"" when no letter is doubled. At C speed
    (``squeeze_parts``): the stream normaliser, a character at a time, was a third of a
    compile of the shipped lists."""
    parts = squeeze_parts(phrase)
    text = parts.squeezed.strip()
    if len(parts.unsqueezed) == len(parts.squeezed) or not text:
        return text, b""  # no run of any character
    lead = len(parts.squeezed) - len(parts.squeezed.lstrip())
    lengths = [len(m.group()) for m in _ANY_RUN.finditer(parts.unsqueezed)][lead:]
    runs = bytes(0 if c == " " else min(r, 255) for c, r in zip(text, lengths, strict=False))
    return text, runs if max(runs) > 1 else b""


_ANY_RUN = re.compile(r"(.)\1*", re.DOTALL)  # each character with its repeats


def _squeezed(phrase: str) -> str:
    return fast_squeeze(phrase)[0].strip()  # (normalise's text, at C speed)


def _words(phrase: str) -> int:
    return _squeezed(phrase).count(" ") + 1


def _in_force(policy: Policy, profile: str, now: datetime
              ) -> tuple[tuple[Category, ...], tuple[Exemption, ...], tuple[Exemption, ...]]:
    """A profile's enabled categories, its exemptions, and those active at ``now``."""
    prof = policy.profile(profile)
    categories = tuple(c for c in policy.categories if c.enabled and c.name in prof.categories)
    exemptions = tuple(e for e in policy.exemptions if e.group == prof.name)
    return categories, exemptions, tuple(e for e in exemptions if e.active(now))


def _share_key(categories: tuple[Category, ...], active: tuple[Exemption, ...]
               ) -> tuple[object, ...]:  # fmt: skip
    return (tuple(c.name for c in categories), tuple(e.id for e in active))
