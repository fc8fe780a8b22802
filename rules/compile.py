"""Compile the keyword lists of one profile into automata and entry tables.

Every list phrase is normalised exactly as typed text is, so evasion tricks in the text
and spelling choices in the list meet in the same squeezed form. One automaton holds all
terms and combination parts of the profile's enabled categories.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import ahocorasick  # type: ignore[import-not-found]  # C library without type stubs

from rules.automaton import Automaton
from rules.normalise import normalise
from rules.schema import Boundary, Category, Exemption, Policy, PolicyError

MAX_PHRASE = 200  # squeezed characters; keeps the keystroke history bounded


@dataclass(frozen=True, slots=True)
class Entry:
    """One meaning of a pattern: a term of a category, or one part of a combination."""

    category: int
    weight: int
    boundary: Boundary
    runs: tuple[int, ...]  # run length each squeezed character needs; 0 for a space
    phrase: str
    combo: int = -1
    part: int = -1
    exempt: tuple[str, ...] = ()  # ids of the exemptions that cover this entry


@dataclass(frozen=True, slots=True)
class ComboRule:
    category: int
    parts: tuple[str, ...]
    weight: int
    window: int


class Compiled:
    """The matcher's view of a policy for one profile at one time (exemptions are
    evaluated at ``now``; recompile after ``valid_until``)."""

    def __init__(self, policy: Policy, profile: str, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        prof = policy.profile(profile)
        self.policy, self.profile = policy, prof
        self.categories: tuple[Category, ...] = tuple(
            c for c in policy.categories if c.enabled and c.name in prof.categories
        )
        self.exemptions = tuple(e for e in policy.exemptions if e.group == prof.name)
        active = tuple(e for e in self.exemptions if e.active(now))
        edges = [t for e in self.exemptions for t in (e.start, e.end) if t > now]
        self.valid_until: datetime | None = min(edges) if edges else None
        self.combos: list[ComboRule] = []
        patterns: dict[str, int] = {}
        building: list[list[Entry]] = []
        self._shared: dict[tuple[int, ...], tuple[int, ...]] = {}  # equal run tuples, one copy
        exempt_terms = {_squeezed(t): e.id for e in active for t in e.terms}
        for ci, cat in enumerate(self.categories):
            cat_ex = tuple(e.id for e in active if cat.name in e.categories)
            for term in cat.terms:
                self._add(building, patterns, term.phrase, ci, term.weight, term.boundary, -1,
                          -1, cat_ex, exempt_terms)  # fmt: skip
            for combo in cat.combos:
                k = len(self.combos)
                self.combos.append(ComboRule(ci, combo.terms, combo.weight, combo.window))
                bounds = combo.boundaries or ("word",) * len(combo.terms)
                for part, (phrase, bound) in enumerate(zip(combo.terms, bounds, strict=True)):
                    self._add(building, patterns, phrase, ci, 0, bound, k, part, cat_ex,
                              exempt_terms)  # fmt: skip
        del self._shared
        # Per pattern id, what it means (tuples: 50,000 of them, smaller than lists).
        self.entries: tuple[tuple[Entry, ...], ...] = tuple(map(tuple, building))
        del building
        self.patterns = tuple(patterns)
        self.automaton = Automaton(self.patterns)
        # The bulk path's automaton, in C; values are pattern ids (stored as C ints).
        self.bulk = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for pid, pattern in enumerate(self.patterns):
            self.bulk.add_word(pattern, pid)
        if self.patterns:
            self.bulk.make_automaton()
        # Per pattern, bit 1: every entry needs a word boundary before it; bit 2: after it.
        self.needs = bytes(
            all(e.boundary in ("word", "start") for e in es)
            | all(e.boundary in ("word", "end") for e in es) << 1
            for es in self.entries
        )

    def _add(self, building: list[list[Entry]], patterns: dict[str, int], phrase: str, ci: int,
             weight: int, boundary: str, combo: int, part: int, cat_ex: tuple[str, ...],
             exempt_terms: dict[str, str]) -> None:  # fmt: skip
        norm = normalise(phrase)
        text = norm.text().strip()
        if not text:
            raise PolicyError(f"{phrase!r} has no letters or digits to match")
        if len(text) > MAX_PHRASE:
            raise PolicyError(f"{phrase[:40]!r}... is longer than {MAX_PHRASE} characters")
        offset = norm.chars.index(text[0])
        runs = tuple(0 if c == " " else r for c, r in zip(text, norm.runs[offset:], strict=False))
        runs = self._shared.setdefault(runs, runs)
        ex = cat_ex + ((exempt_terms[text],) if text in exempt_terms else ())
        pid = patterns.setdefault(text, len(patterns))
        if pid == len(building):
            building.append([])
        bound: Boundary = boundary  # type: ignore[assignment]  # validated by the loader
        building[pid].append(Entry(ci, weight, bound, runs, phrase, combo, part, ex))

    def exemption(self, ident: str) -> Exemption:
        return next(e for e in self.exemptions if e.id == ident)


def _squeezed(phrase: str) -> str:
    return normalise(phrase).text().strip()
