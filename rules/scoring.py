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

from rules.compile import Compiled
from rules.entries import Entry
from rules.sequences import SequenceRule

Seen = tuple[int, "Hit"]  # (word index of the hit's last word, hit)
GuardSeen = tuple[int, int, int, int]  # (guard, first word, last word, start position)
# A member hit of a sequence segment: (member key, first word, last word, start, exempt).
Member = tuple[int, int, int, int, tuple[str, ...]]
# A sequence waiting for its segment ``next``: (rule, next, the previous segment's last
# word, the first segment's start position and first word, exemptions so far).
Armed = tuple[int, int, int, int, int, tuple[str, ...]]
ScoreState = tuple[
    int, dict[int, tuple[Seen, ...]], dict[int, tuple[Seen | None, ...]], dict[int, int],
    tuple[Member, ...], tuple[Armed, ...], tuple[GuardSeen, ...],
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
    __slots__ = ("_alerted", "_armed", "_combos", "_history", "_inclusive", "_touched",
                 "_windows", "c", "guards", "words")  # fmt: skip

    def __init__(self, compiled: Compiled, ends_inclusive: bool = False) -> None:
        self.c = compiled
        self.words = 0  # hard word gaps seen since the last reset
        self._windows: dict[int, tuple[tuple[int, Hit], ...]] = {}
        self._combos: dict[int, tuple[tuple[int, Hit] | None, ...]] = {}
        self._history: tuple[Member, ...] = ()  # recent member hits, oldest first
        self._armed: tuple[Armed, ...] = ()
        self.guards: tuple[GuardSeen, ...] = ()
        # category -> end of the last alert's span; hits starting before it were alerted on.
        self._alerted: dict[int, int] = {}
        # The bulk path's Hit.end is its last character, the stream's the one after it.
        self._inclusive = ends_inclusive
        self._touched: list[int] = []  # categories added to since the last flush

    def state(self) -> ScoreState:
        return (self.words, self._windows, self._combos, self._alerted, self._history,
                self._armed, self.guards)  # fmt: skip

    def restore(self, st: ScoreState) -> None:
        (self.words, self._windows, self._combos, self._alerted, self._history, self._armed,
         self.guards) = st  # fmt: skip

    def add(self, entry: Entry, start: int, end: int) -> None:
        """One hit of ``entry`` (from ``start`` to ``end`` in the path's positions) whose
        last word is ``self.words``. Every hit that ends at the same character is added
        before ``flush`` fires, so an alert's score holds all of them (a weight-20 term is
        not lost under a weight-10 one over the same words)."""
        last = self.words
        first = last - entry.seps
        if entry.member >= 0:
            self._member(entry, first, last, start, end)
            return
        if entry.guard >= 0:
            self._guard(entry.guard, first, last, start)
            return
        hit = Hit(entry.phrase, entry.weight, start, end, entry.exempt, first, last)
        if entry.rule >= 0:
            self._trigger(entry, hit)
            return
        if entry.combo < 0:
            self._push(entry.category, hit)
            return
        rule = self.c.combos[entry.combo]
        seen = list(self._combos.get(entry.combo) or (None,) * len(rule.parts))
        seen[entry.part] = (last, hit)
        combos = dict(self._combos)
        parts = [s for s in seen if s is not None and last - s[0] <= rule.window]
        if len(parts) < len(rule.parts):
            combos[entry.combo] = tuple(seen)
            self._combos = combos
            return
        combos.pop(entry.combo, None)  # complete: start collecting afresh
        self._combos = combos
        hits = [h for _, h in parts]
        self._push(rule.category, _joined(" + ".join(rule.parts), rule.weight, hits))

    def _guard(self, guard: int, first: int, last: int, start: int) -> None:
        """A guard seen: kept while an alert it could lower may still be waiting."""
        oldest = last - self.c.guard_reach
        self.guards = (*(g for g in self.guards if g[2] >= oldest), (guard, first, last, start))

    # -- sequences (rules/sequences.py): members remembered, triggers look back ----------
    def _member(self, entry: Entry, first: int, last: int, start: int, end: int) -> None:
        key = entry.member
        if self._armed:
            self._advance(key, first, last, end, entry.exempt)
        oldest = last - self.c.seq_reach
        history = self._history
        if history and history[0][2] < oldest:  # oldest first: drop from the front
            k = 1
            while k < len(history) and history[k][2] < oldest:
                k += 1
            history = history[k:]
        self._history = (*history, (key, first, last, start, entry.exempt))

    def _trigger(self, entry: Entry, hit: Hit) -> None:
        """The rule's rarest segment hit: find the segments before it in the history
        (each ending within its gap before the next one starts; every candidate is tried,
        newest first), then complete the rule or wait for the segments after it."""
        rule = self.c.sequences[entry.rule]
        t = rule.trigger
        found = self._before(rule, t - 1, hit.first_word, hit.start, hit.exempt)
        if found is None:
            return
        start, begin, exempt = found
        if t == len(rule.gaps):
            self._complete(entry.rule, start, hit.end, set(exempt), begin, hit.last_word)
        else:
            self._armed = (*self._live(hit.last_word),
                           (entry.rule, t + 1, hit.last_word, start, begin, exempt))  # fmt: skip

    def _before(self, rule: SequenceRule, i: int, begin: int, start: int,
                exempt: tuple[str, ...]) -> tuple[int, int, tuple[str, ...]] | None:  # fmt: skip
        """Segments ``i`` down to 0, the segment after ``i`` beginning at word ``begin``:
        (start position, first word, exemptions) of a way to match them, or None."""
        if i < 0:
            return start, begin, exempt
        group, gap = rule.groups[i], rule.gaps[i]
        for key, first, last, pos, ex in reversed(self._history):
            if last >= begin:
                continue  # ends inside or after the segment it should precede
            if begin - last - 1 > gap:
                return None  # older ones are further away still
            if key in group:
                joined = tuple(sorted({*exempt, *ex})) if ex else exempt
                found = self._before(rule, i - 1, first, pos, joined)
                if found is not None:
                    return found
        return None

    def _advance(self, key: int, first: int, last: int, end: int,
                 ex: tuple[str, ...]) -> None:  # fmt: skip
        """A member hit: move on the armed rules whose next segment it is."""
        armed = self._live(last)
        grown: list[Armed] = []
        for item in armed:
            rule_no, nxt, prev_last, start, begin, exempt = item
            rule = self.c.sequences[rule_no]
            gap = rule.gaps[nxt - 1]
            if key not in rule.groups[nxt] or not 0 <= first - prev_last - 1 <= gap:
                continue
            joined = tuple(sorted({*exempt, *ex}))
            if nxt == len(rule.gaps):
                self._complete(rule_no, start, end, set(joined), begin, last)
            else:
                grown.append((rule_no, nxt + 1, last, start, begin, joined))
        self._armed = (*armed, *grown)

    def _live(self, now: int) -> tuple[Armed, ...]:
        """The armed rules whose next segment can still be among the hits that end at
        word ``now`` or later (hits arrive in order of their end, and a long phrase that
        began in time may end after shorter ones)."""
        seqs = self.c.sequences
        out = []
        for a in self._armed:
            rule = seqs[a[0]]
            if now - a[2] - 1 <= rule.gaps[a[1] - 1] + rule.spans[a[1]] - 1:
                out.append(a)
        return tuple(out)

    def _complete(self, rule_no: int, start: int, end: int, exempt: set[str], first: int,
                  last: int) -> None:  # fmt: skip
        rule = self.c.sequences[rule_no]
        if rule.guard >= 0:
            self._guard(rule.guard, first, last, start)
            return
        self._push(rule.category, Hit(rule.phrase, rule.weight, start, end,
                                      tuple(sorted({*exempt, *rule.exempt})), first, last))

    def _push(self, cat: int, hit: Hit) -> None:
        alerted = self._alerted.get(cat)
        inclusive = self._inclusive
        if alerted is not None and (hit.start <= alerted if inclusive else hit.start < alerted):
            return  # its words are in an alert of this category already
        category = self.c.categories[cat]
        oldest = self.words - category.window
        kept = tuple(
            p for p in self._windows.get(cat, ())
            if p[0] >= oldest and not (  # the same entry over the same words counts once
                p[1].phrase == hit.phrase
                and (hit.start <= p[1].end if inclusive else hit.start < p[1].end))
        )  # fmt: skip
        windows = dict(self._windows)
        windows[cat] = (*kept, (self.words, hit))
        self._windows = windows
        if cat not in self._touched:
            self._touched.append(cat)

    def flush(self) -> list[Fired]:
        """Alerts of the categories whose window reached the threshold since the last flush;
        each such window then starts afresh."""
        fired: list[Fired] = []
        touched, self._touched = self._touched, []
        for cat in touched:
            hits = self._windows.get(cat, ())
            total = clean = 0
            for _, h in hits:
                total += h.weight
                if not h.exempt:
                    clean += h.weight
            threshold = self.c.categories[cat].threshold
            if total < threshold:
                continue
            windows = dict(self._windows)
            windows.pop(cat, None)
            self._windows = windows
            if clean >= threshold:  # a suppressed (exempted) alert consumes nothing
                alerted_ends = dict(self._alerted)
                alerted_ends[cat] = max(h.end for _, h in hits)
                self._alerted = alerted_ends
            fired.append(Fired(cat, total, tuple(h for _, h in hits), clean < threshold))
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
