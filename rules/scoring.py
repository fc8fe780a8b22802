"""Weighted scores over a sliding window of words: combinations, sequences, guards, and
exemptions.

State is immutable (tuples and copy-on-write dicts) so the keystroke path can snapshot it
for Backspace by reference. An alert fires when the weights of a category's hits within
its window reach the threshold; the window then starts afresh, and a later hit of that
category that overlaps the words already alerted on is not counted again (so "want to die"
is one alert, not a second one for the combination "want + die"). Two hits of one entry
over overlapping words count once ("{photo} [of you]" on "pic of you").

A *sequence* (a pattern with gaps) adds its weight when its segments were seen in order,
each within its gap of words after the one before. A *guard* hit is only recorded here:
the matcher holds alerts of guarded categories until their sentence is over and then asks
``guarded_score`` what is left of them.

If the threshold is only reached with hits an exemption covers, a *suppressed* alert is
returned instead, so the exemption's use is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from rules.compile import Compiled, Entry

Seen = tuple[int, "Hit"]  # (word index of the hit's last word, hit)
Progress = tuple[int, int, tuple[str, ...], int] | None  # (last word, start, exempt, 1st word)
GuardSeen = tuple[int, int, int, int]  # (guard, first word, last word, start position)
ScoreState = tuple[
    int, dict[int, tuple[Seen, ...]], dict[int, tuple[Seen | None, ...]], dict[int, int],
    dict[int, tuple[Progress, ...]], tuple[GuardSeen, ...],
]  # fmt: skip


class Hit(NamedTuple):  # a tuple: made for every hit, so it must be cheap to make
    phrase: str
    weight: int
    start: int  # raw offsets (the bulk path: squeezed indices of the first and last
    end: int  # character, mapped to raw offsets only for an alert)
    exempt: tuple[str, ...] = ()
    first_word: int = 0  # word indices, for sequences and guards
    last_word: int = 0


class Fired(NamedTuple):
    category: int
    score: int
    hits: tuple[Hit, ...]
    suppressed: bool

    @property
    def words(self) -> tuple[int, int]:
        return min(h.first_word for h in self.hits), max(h.last_word for h in self.hits)


class Scorer:
    __slots__ = ("_alerted", "_combos", "_inclusive", "_progress", "_windows", "c", "guards",
                 "words")  # fmt: skip

    def __init__(self, compiled: Compiled, ends_inclusive: bool = False) -> None:
        self.c = compiled
        self.words = 0  # hard word gaps seen since the last reset
        self._windows: dict[int, tuple[tuple[int, Hit], ...]] = {}
        self._combos: dict[int, tuple[tuple[int, Hit] | None, ...]] = {}
        self._progress: dict[int, tuple[Progress, ...]] = {}
        self.guards: tuple[GuardSeen, ...] = ()
        # category -> end of the last alert's span; hits starting before it were alerted on.
        self._alerted: dict[int, int] = {}
        # The bulk path's Hit.end is its last character, the stream's the one after it.
        self._inclusive = ends_inclusive

    def state(self) -> ScoreState:
        return (self.words, self._windows, self._combos, self._alerted, self._progress,
                self.guards)  # fmt: skip

    def restore(self, st: ScoreState) -> None:
        (self.words, self._windows, self._combos, self._alerted, self._progress,
         self.guards) = st  # fmt: skip

    def add(self, entry: Entry, hit: Hit) -> list[Fired]:
        """One hit of ``entry`` whose last word is ``self.words``."""
        hit = hit._replace(first_word=self.words - entry.seps, last_word=self.words)
        if entry.guard >= 0:  # kept while an alert it could lower may still be waiting
            oldest = self.words - self.c.guard_reach
            self.guards = (*(g for g in self.guards if g[2] >= oldest),
                           (entry.guard, hit.first_word, hit.last_word, hit.start))  # fmt: skip
            return []
        if entry.rule >= 0:
            return self._sequence(entry, hit)
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
        return self._window(rule.category, _joined(" + ".join(rule.parts), rule.weight, hits))

    def _sequence(self, entry: Entry, hit: Hit) -> list[Fired]:
        rule = self.c.sequences[entry.rule]
        last = len(rule.gaps)
        prog = list(self._progress.get(entry.rule) or (None,) * last)
        if entry.seg == 0:
            prog[0] = (hit.last_word, hit.start, hit.exempt, hit.first_word)
        else:
            prev = prog[entry.seg - 1]
            if prev is None or not 0 <= hit.first_word - prev[0] - 1 <= rule.gaps[entry.seg - 1]:
                return []
            exempt = tuple(sorted({*prev[2], *hit.exempt}))
            if entry.seg == last:
                done = Hit(rule.phrase, rule.weight, prev[1], hit.end, exempt, prev[3],
                           hit.last_word)  # fmt: skip
                return self._window(rule.category, done)
            prog[entry.seg] = (hit.last_word, prev[1], exempt, prev[3])
        progress = dict(self._progress)
        progress[entry.rule] = tuple(prog)
        self._progress = progress
        return []

    def _window(self, cat: int, hit: Hit) -> list[Fired]:
        alerted = self._alerted.get(cat)
        inclusive = self._inclusive
        if alerted is not None and (hit.start <= alerted if inclusive else hit.start < alerted):
            return []  # its words are in an alert of this category already
        category = self.c.categories[cat]
        oldest = self.words - category.window
        kept = tuple(
            p for p in self._windows.get(cat, ())
            if p[0] >= oldest and not (  # the same entry over the same words counts once
                p[1].phrase == hit.phrase
                and (hit.start <= p[1].end if inclusive else hit.start < p[1].end))
        )  # fmt: skip
        hits = (*kept, (self.words, hit))
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
            fired.append(Fired(cat, total, tuple(h for _, h in hits), clean < category.threshold))
        else:
            windows[cat] = hits
        self._windows = windows
        return fired


def _joined(phrase: str, weight: int, hits: list[Hit]) -> Hit:
    return Hit(phrase, weight, min(h.start for h in hits), max(h.end for h in hits),
               tuple(sorted({x for h in hits for x in h.exempt})),
               min(h.first_word for h in hits), max(h.last_word for h in hits))  # fmt: skip


def guarded_score(c: Compiled, fired: Fired, guards: tuple[GuardSeen, ...],
                  same_sentence: Callable[[int, int], bool]) -> int:  # fmt: skip
    """The alert's score once the guards in its sentence and reach have lowered it (each
    guard counted once). ``same_sentence(a, b)`` tells whether two start positions (the
    path's own coordinates) lie in one sentence."""
    first, last = fired.words
    starts = (min(h.start for h in fired.hits), max(h.start for h in fired.hits))
    score, used = fired.score, set()
    for g, g_first, g_last, g_start in guards:
        rule = c.guards[g]
        if g in used or fired.category not in rule.categories:
            continue
        if g_first > last + rule.within or g_last < first - rule.within:
            continue
        if same_sentence(g_start, starts[0]) or same_sentence(g_start, starts[1]):
            used.add(g)
            score += rule.weight
    return score
