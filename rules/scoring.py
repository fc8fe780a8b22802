"""Weighted scores over a sliding window of words, combinations, and exemptions.

State is immutable (tuples and copy-on-write dicts) so the keystroke path can snapshot it
for Backspace by reference. An alert fires when the weights of a category's hits within
its window reach the threshold; the window then starts afresh, and a later hit of that
category that overlaps the words already alerted on is not counted again (so "want to die"
is one alert, not a second one for the combination "want + die"). If the threshold is only
reached with hits an exemption covers, a *suppressed* alert is returned instead, so the
exemption's use is recorded.
"""

from __future__ import annotations

from typing import NamedTuple

from rules.compile import Compiled, Entry

Seen = tuple[int, "Hit"]  # (word index, hit)
ScoreState = tuple[
    int, dict[int, tuple[Seen, ...]], dict[int, tuple[Seen | None, ...]], dict[int, int]
]
# (category index, score, hits, suppressed)
Fired = tuple[int, int, tuple["Hit", ...], bool]


class Hit(NamedTuple):  # a tuple: made for every hit, so it must be cheap to make
    phrase: str
    weight: int
    start: int  # raw offsets (the bulk path: squeezed indices of the first and last
    end: int  # character, mapped to raw offsets only for an alert)
    exempt: tuple[str, ...] = ()


class Scorer:
    __slots__ = ("_alerted", "_combos", "_inclusive", "_windows", "c", "words")

    def __init__(self, compiled: Compiled, ends_inclusive: bool = False) -> None:
        self.c = compiled
        self.words = 0  # hard word gaps seen since the last reset
        self._windows: dict[int, tuple[tuple[int, Hit], ...]] = {}
        self._combos: dict[int, tuple[tuple[int, Hit] | None, ...]] = {}
        # category -> end of the last alert's span; hits starting before it were alerted on.
        self._alerted: dict[int, int] = {}
        # The bulk path's Hit.end is its last character, the stream's the one after it.
        self._inclusive = ends_inclusive

    def state(self) -> ScoreState:
        return (self.words, self._windows, self._combos, self._alerted)

    def restore(self, st: ScoreState) -> None:
        self.words, self._windows, self._combos, self._alerted = st

    def add(self, entry: Entry, hit: Hit) -> list[Fired]:
        if entry.combo < 0:
            return self._window(entry.category, hit)
        rule = self.c.combos[entry.combo]
        seen = list(self._combos.get(entry.combo) or (None,) * len(rule.parts))
        seen[entry.part] = (self.words, hit)
        combos = dict(self._combos)
        parts = [s for s in seen if s is not None and self.words - s[0] <= rule.window]
        if len(parts) < len(rule.parts):
            combos[entry.combo] = tuple(seen)
            self._combos = combos
            return []
        combos.pop(entry.combo, None)  # complete: start collecting afresh
        self._combos = combos
        hits = [h for _, h in parts]
        combined = Hit(" + ".join(rule.parts), rule.weight, min(h.start for h in hits),
                       max(h.end for h in hits),
                       tuple(sorted({x for h in hits for x in h.exempt})))  # fmt: skip
        return self._window(rule.category, combined)

    def _window(self, cat: int, hit: Hit) -> list[Fired]:
        alerted = self._alerted.get(cat)
        if alerted is not None and (
            hit.start <= alerted if self._inclusive else hit.start < alerted
        ):
            return []  # its words are in an alert of this category already
        category = self.c.categories[cat]
        oldest = self.words - category.window
        hits = (*(p for p in self._windows.get(cat, ()) if p[0] >= oldest), (self.words, hit))
        total = clean = 0
        for _, h in hits:
            total += h.weight
            if not h.exempt:
                clean += h.weight
        windows = dict(self._windows)
        fired: list[Fired] = []
        if total >= category.threshold:
            windows.pop(cat, None)
            if clean >= category.threshold:  # a suppressed (exempted) alert consumes nothing
                alerted_ends = dict(self._alerted)
                alerted_ends[cat] = max(h.end for _, h in hits)
                self._alerted = alerted_ends
            fired.append((cat, total, tuple(h for _, h in hits), clean < category.threshold))
        else:
            windows[cat] = hits
        self._windows = windows
        return fired
