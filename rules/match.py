"""The keyword matcher: pure, text in and alerts out.

``Stream`` takes one keystroke at a time (``feed``, ``backspace``, ``delete``, ``reset``)
and never rescans: each keystroke advances the normaliser and the automaton by a step and
pushes a small snapshot, so Backspace pops one. ``match_text`` is the bulk path: C-speed
normalisation and ``pyahocorasick`` find the candidates, and the stream's checks (word
boundaries, run lengths, scoring, the map back to raw offsets) run at those only, in the
stream's order, so both paths give the same alerts (property tests compare them).

An ``Alert`` carries the terms, the score, raw offsets and a few words of context capped
in words and characters; nothing more of the typed text leaves this module.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rules.compile import Compiled
from rules.entries import Entry
from rules.normalise import (
    COLLAPSE,
    FOLD,
    ODD,
    RUNS,
    SEP,
    SPACES,
    Parts,
    Squeezed,
    StreamNormaliser,
    squeeze_parts,
)
from rules.scoring import Fired, GuardSeen, Hit, Scorer, guarded_score

HISTORY = 512  # keystrokes Backspace can undo, and characters kept for context
BOUNDS_KEPT = 64  # recent sentence ends kept for alerts that wait for theirs
_SENTENCE_END = re.compile(r"(?<=[.!?])\s|\n")  # the stream's rule, for the bulk path
Held = tuple[Fired, "Alert"]  # an alert of a guarded category, waiting for its sentence


@dataclass(frozen=True)
class Alert:
    category: str
    score: int
    threshold: int
    terms: tuple[str, ...]
    start: int  # raw offsets into the text since the last reset
    end: int
    context: str
    suppressed: bool = False  # an exemption stopped it; still recorded for the DSL
    exemptions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Stream:
    """Keystroke-at-a-time matcher over one text field (reset on focus change/Enter)."""

    def __init__(self, compiled: Compiled) -> None:
        self.c = compiled
        self._sq = Squeezed()
        self._norm = StreamNormaliser(self._sq)
        self._history: deque[tuple[Any, ...]] = deque(maxlen=HISTORY)
        self._emitted: set[tuple[Any, ...]] = set()
        self._clear()

    def _clear(self) -> None:
        self._sq.clear()
        self._norm.reset()
        self._history.clear()
        self._raw: list[str] = []
        self._raw_base = 0
        self._state = 0
        self._done = 0  # squeezed characters already stepped through the automaton
        self._pending: tuple[tuple[int, int], ...] = ()  # (pattern, end) awaiting next char
        self._score = Scorer(self.c)
        self._held: tuple[Held, ...] = ()
        self._bounds: tuple[int, ...] = ()  # raw offsets of recent sentence ends
        self.standing: tuple[Alert, ...] = ()  # alerts of the text as it stands now

    # -- keystrokes -------------------------------------------------------------------
    def feed(self, ch: str) -> list[Alert]:
        """One typed character (a str of length 1). Returns alerts not reported before."""
        sq = self._sq
        last = (sq.runs[-1], sq.ends[-1]) if sq.chars else (0, 0)
        self._history.append((self._norm.state(), len(sq), last, self._state, self._done,
                              self._pending, self._score.state(), self.standing, self._held,
                              self._bounds))  # fmt: skip
        at = self._raw_base + len(self._raw)
        if ch == "\n" or (ch.isspace() and self._raw and self._raw[-1] in ".!?"):
            self._bounds = (*self._bounds[-BOUNDS_KEPT + 1 :], at)
        self._raw.append(ch)
        self._norm.feed(ch, at)
        out = self._advance()
        if len(self._raw) > 2 * HISTORY:  # bounded buffers: forget the distant past
            del self._raw[:HISTORY]
            self._raw_base += HISTORY
            sq.trim(HISTORY)
        return out

    def feed_text(self, text: str) -> list[Alert]:
        out: list[Alert] = []
        for ch in text:
            out.extend(self.feed(ch))
        return out

    def backspace(self) -> list[Alert]:
        """Undo the last keystroke. Past the bounded history the text is forgotten.

        An alert that was waiting for the end of its sentence and is now erased is settled
        with the guards seen so far and returned: what was typed and erased is reported."""
        if not self._history:
            return self._forget()
        (norm, n, (run, end), state, done, pending, score, standing, held,
         bounds) = self._history.pop()  # fmt: skip
        if n < self._sq.base or not self._raw:
            return self._forget()
        erased = [h for h in self._held if h not in held]
        guards, old_bounds = self._score.guards, self._bounds
        self._raw.pop()
        self._norm.restore(norm)
        self._sq.truncate(n, run, end)
        self._state, self._done, self._pending = state, done, pending
        self._score.restore(score)
        self.standing, self._held, self._bounds = standing, held, bounds
        return self._settle(erased, guards, old_bounds, stands=False)

    def _forget(self) -> list[Alert]:
        out = self._settle(list(self._held), self._score.guards, self._bounds, stands=False)
        self._clear()
        return out

    def delete(self) -> None:
        """Forward Delete at the end of the text deletes nothing. (A keyboard sensor that
        sees the cursor move should call ``reset``: the stream models appending only.)"""

    def text(self) -> str:
        """What has been typed since the last reset, as it stands (Backspace applied), for
        the semantic stage; at most the last ``2 * HISTORY`` characters. Stays in memory."""
        return "".join(self._raw)

    def finish(self) -> list[Alert]:
        """End of the text: settle what is pending. ``standing`` then holds every alert
        of the final text. Call ``reset`` before typing on."""
        self._norm.flush()
        out = self._advance()
        out.extend(self._resolve(True))
        held, self._held = self._held, ()
        out.extend(self._settle(list(held), self._score.guards, self._bounds))
        return out

    def reset(self) -> list[Alert]:
        """Enter or focus change: ``finish``, then start a new, empty text."""
        out = self.finish()
        self._clear()
        return out

    # -- internals --------------------------------------------------------------------
    def _advance(self) -> list[Alert]:
        out: list[Alert] = []
        sq, auto = self._sq, self.c.automaton
        lengths, needs = auto.lengths, self.c.needs
        while self._done < sq.base + len(sq.chars):
            j = self._done
            c = sq.chars[j - sq.base]
            if self._pending:
                out.extend(self._resolve(c == SEP or sq.soft[j - sq.base]))
            if c == SEP:
                self._score.words += 1
            self._state = auto.step(self._state, ord(c))
            self._done = j + 1
            found = []
            for pid in auto.outputs(self._state):
                i = j + 1 - lengths[pid] - sq.base
                # in a word ("he" in "the"): no entry of a phrase needing a start fits
                if needs[pid] & 1 and i > 0 and sq.chars[i - 1] != SEP and not sq.soft[i]:
                    continue
                found.append((pid, j + 1))
            if found:
                self._pending += tuple(found)
            if self._held:
                out.extend(self._release(sq.starts[j - sq.base]))
        return out

    def _release(self, at: int) -> list[Alert]:
        """Settle the waiting alerts that no guard can reach any more: their sentence
        ended before raw offset ``at`` (where the text has got to, every hit before it
        settled), or the text is ``hold_words`` words past them."""
        bounds = self._bounds
        ready, self._held = _ready(self._held, self._score.words, self.c.hold_words,
                                   _ended(bounds, at))  # fmt: skip
        return self._settle(ready, self._score.guards, bounds) if ready else []

    def _settle(self, held: list[Held], guards: tuple[GuardSeen, ...],
                bounds: tuple[int, ...], stands: bool = True) -> list[Alert]:  # fmt: skip
        """The waiting alerts that their guards leave standing, reported; ``stands``:
        they are in the text as it now stands (not erased)."""
        out: list[Alert] = []
        for fired, alert in held:
            if guarded_score(self.c, fired, guards, _sentences(bounds)) >= alert.threshold:
                out.extend(self._emit(alert, stands))
        return out

    def _resolve(self, end_ok: bool) -> list[Alert]:
        """Settle candidates now that the character after them is known."""
        out: list[Alert] = []
        pending, self._pending = self._pending, ()
        sq, c, add = self._sq, self.c, self._score.add
        lengths, entries = c.automaton.lengths, c.entries
        for pid, end in pending:
            start = end - lengths[pid]
            i = start - sq.base
            if i < 0:
                continue  # fell out of the bounded history
            start_ok = i == 0 or sq.chars[i - 1] == SEP or sq.soft[i]
            for entry in entries[pid]:
                if _fits(entry, start_ok, end_ok, sq, i, end - start):
                    add(entry, sq.starts[i], sq.ends[end - 1 - sq.base])
        for fired in self._score.flush():  # every hit ending here counted, then thresholds
            alert = _new_alert(self.c, *fired, self._context)
            if fired.category in self.c.guarded:
                self._held += ((fired, alert),)
            else:
                out.extend(self._emit(alert))
        return out

    def _emit(self, alert: Alert, stands: bool = True) -> list[Alert]:
        if stands:
            self.standing += (alert,)
        key = (alert.category, alert.start, alert.end, alert.terms, alert.suppressed)
        if key in self._emitted:  # typed, erased and typed again: reported once
            return []
        self._emitted.add(key)
        return [alert]

    def _context(self, end: int) -> str:
        """At most N words / M characters of what was typed, ending at the match."""
        hi, raw = end - self._raw_base, self._raw
        if hi < 0:  # the hit fell out of the bounded history
            return _capped(self.c, "".join(raw[max(0, hi - 4 * self.c.policy.context_chars) : hi]))
        return _context(self.c, lambda lo: "".join(raw[lo:hi]), hi)


def _context(c: Compiled, seg: Callable[[int], str], hi: int) -> str:
    """``_capped`` of the text from ``4 * context_chars`` before ``hi`` to ``hi``, given
    ``seg(lo)``, the text from ``lo`` to ``hi``. Most of the time a short tail of it
    decides the result (which then is the same); only otherwise is all of it read."""
    pol = c.policy
    lo = max(0, hi - 4 * pol.context_chars)
    near = hi - pol.context_chars - 5 * pol.context_words
    if near > lo:
        tokens = seg(near).split()  # all but the first are whole words of the long text
        if len(tokens) > pol.context_words:
            return " ".join(tokens[-pol.context_words :])[-pol.context_chars :]
        tail = " ".join(tokens[1:])
        if len(tail) >= pol.context_chars:
            return tail[-pol.context_chars :]
    return _capped(c, seg(lo))


def _ended(bounds: tuple[int, ...] | list[int], at: int) -> int:
    """The last sentence end before raw offset ``at``; -1 if none."""
    i = bisect_left(bounds, at)
    return bounds[i - 1] if i else -1


def _ready(held: tuple[Held, ...], words: int, hold: int,
           ended: int) -> tuple[list[Held], tuple[Held, ...]]:  # fmt: skip
    """Split waiting alerts into those no guard can reach any more (their sentence ended
    at or before ``ended``, or the text is ``hold`` words past them) and the rest."""
    ready = [h for h in held if h[1].end <= ended or words > h[0].words[1] + hold]
    return ready, tuple(h for h in held if h not in ready) if ready else held


def _sentences(bounds: tuple[int, ...] | list[int]) -> Callable[[int, int], bool]:
    """``same_sentence(a, b)`` over sorted sentence-end offsets."""

    def same(a: int, b: int) -> bool:
        lo, hi = (a, b) if a <= b else (b, a)
        return bisect_left(bounds, lo) == bisect_left(bounds, hi)

    return same


def _capped(c: Compiled, seg: str) -> str:
    """The last ``context_words`` words of ``seg``, at most ``context_chars`` characters."""
    pol = c.policy
    words = seg.split()[-pol.context_words :]
    return " ".join(words)[-pol.context_chars :]


def _new_alert(c: Compiled, cat: int, score: int, hits: tuple[Hit, ...], suppressed: bool,
               context: Callable[[int], str],
               span: Callable[[int, int], tuple[int, int]] | None = None) -> Alert:  # fmt: skip
    category = c.categories[cat]
    start, end = min(h.start for h in hits), max(h.end for h in hits)
    if span is not None:
        start, end = span(start, end)
    ex = tuple(sorted({x for h in hits for x in h.exempt})) if suppressed else ()
    terms = tuple(dict.fromkeys(h.phrase for h in hits))
    return Alert(category.name, score, category.threshold, terms, start, end, context(end),
                 suppressed, ex)  # fmt: skip


def _fits(entry: Entry, start_ok: bool, end_ok: bool, sq: Squeezed, i: int,
          size: int) -> bool:  # fmt: skip
    b = entry.boundary
    if (b in ("word", "start") and not start_ok) or (b in ("word", "end") and not end_ok):
        return False
    runs = sq.runs
    if not entry.runs:  # no doubled letter in the phrase: none typed here either (or 3+)
        if 2 not in runs[i : i + size]:
            return True  # (most spans: one C-speed look)
        return all(runs[k] != 2 or sq.chars[k] == SEP for k in range(i, i + size))
    for k, need in enumerate(entry.runs):
        # A run typed as written matches; a longer one only if stretched (3+), so "as"
        # is not "ass" and "good" is not "god", but "kiiiill" is "kill".
        have = runs[i + k]
        if need and have != need and have < max(3, need):
            return False
    return True


def match_text(compiled: Compiled, text: str) -> list[Alert]:
    """Bulk path: the alerts of a whole text, identical to streaming it then ``finish``
    (``Stream.standing``); property tests hold the two paths together.

    ``pyahocorasick`` finds the patterns in the squeezed text at C speed; boundaries, run
    lengths, raw offsets and scores are then worked out in Python at the candidates only,
    so the cost follows the hits, not the characters.

    Past the stream's bounded history (``2 * HISTORY`` characters) an alert's context
    is cut where the stream had forgotten the text when it settled the hit; the bulk
    path bounds that moment and, in the rare case where the bound cannot rule a cut
    out (a hit followed by a long stretch that folds to nothing), runs ``Stream``."""
    if not compiled.pattern_count:
        return []
    alerts = _bulk(compiled, text, squeeze_parts(text))
    if alerts is not None:
        return alerts
    stream = Stream(compiled)
    stream.feed_text(text)
    stream.finish()
    return list(stream.standing)


SHORT = 2000  # characters: a search query, a title, a sentence


def match_short(compiled: Compiled, text: str) -> list[Alert]:
    """``match_text`` for the agent's short texts (search queries, titles): the keystroke
    path until something else has built the bulk automaton, so a PC does not hold a second
    automaton (about 17 MB with the shipped lists) for a few queries a minute."""
    if compiled.bulk_ready or len(text) > SHORT:
        return match_text(compiled, text)
    stream = Stream(compiled)
    stream.feed_text(text)
    stream.finish()
    return list(stream.standing)


def _raw_base(fed: int) -> int:
    """``Stream._raw_base`` after ``fed`` keystrokes."""
    return 0 if fed <= 2 * HISTORY else HISTORY * ((fed - HISTORY - 1) // HISTORY)


def _bulk(c: Compiled, text: str, parts: Parts) -> list[Alert] | None:
    """The stream's candidates, settled in the stream's order (by end, longest first).
    None if only the stream can tell an alert's context (see ``match_text``)."""
    s = parts.squeezed
    n, soft = len(s), parts.collapsed
    lengths, needs = c.automaton.lengths, c.needs
    # Only the hits that can change a score go on (rules/bulk_gate.py); often none can.
    # (A long text holds nearly every common phrase: there the gate would keep all.)
    gate = None if len(text) > 2 * HISTORY else c.bulk_gate
    found = []
    if soft:  # a boundary may lie inside a word: every occurrence is a candidate
        hits = list(c.bulk.iter(s))
        if gate is not None:
            keep = gate.keep([pid for _, pid in hits], lambda: [e for e, _ in hits], s)
            if keep is None:
                return []
            hits = [h for h in hits if h[1] in keep]
        found = [(last, -lengths[pid], pid) for last, pid in hits]
    else:  # whole-word phrases are stored padded with separators: in-word ones never show
        hits = list(c.bulk_words.iter(SEP + s + SEP))
        if gate is not None:
            keep = gate.keep([value >> 1 for _, value in hits],
                             lambda: [e - 1 - (v & 1) for e, v in hits], s)  # fmt: skip
            if keep is None:
                return []
            hits = [h for h in hits if h[1] >> 1 in keep]
        for end, value in hits:
            pid = value >> 1
            size = lengths[pid]
            if value & 1:
                found.append((end - 2, -size, pid))
                continue
            last = end - 1
            need = needs[pid]
            if need & 1 and last >= size and s[last - size] != SEP:
                continue
            if need & 2 and last + 1 < n and s[last + 1] != SEP:
                continue
            found.append((last, -size, pid))
    if not found:
        return []
    found.sort()
    at: _Offsets | None = None
    scorer: Scorer | None = None
    alerts: list[Alert] = []
    held: tuple[Held, ...] = ()
    bounds: list[int] | None = None
    long = len(text) > 2 * HISTORY
    group = -1  # the character the hits being added end at

    def fire(last: int) -> bool:
        """Thresholds for the hits that ended at squeezed character ``last`` (as the
        stream's ``_resolve``); False if only the stream can tell an alert's context."""
        nonlocal held
        if scorer is None or at is None:
            return True
        for fired in scorer.flush():
            alert = _new_alert(c, *fired, context, at.span)
            if long:
                fed = at.settled_by(last + 1) if last + 1 < n else len(text)
                if _raw_base(fed) > max(0, alert.end - 4 * c.policy.context_chars):
                    return False
            if fired.category in c.guarded:
                held += ((fired, alert),)
            else:
                alerts.append(alert)
        return True
    counted = 0  # squeezed characters whose gaps ``scorer.words`` holds

    def context(end: int) -> str:
        return _context(c, lambda lo: text[lo:end], end)

    for last, neg, pid in found:
        first = last + neg + 1
        start_ok = first == 0 or s[first - 1] == SEP
        end_ok = last + 1 == n or s[last + 1] == SEP
        if soft and not (start_ok and end_ok):
            at = at or _Offsets(text, parts)
            start_ok = start_ok or at.soft(first)
            end_ok = end_ok or at.soft(last + 1)
        for entry in c.entries[pid]:
            b = entry.boundary
            if (b in ("word", "start") and not start_ok) or (b in ("word", "end") and not end_ok):
                continue
            at = at or _Offsets(text, parts)
            if not at.runs_fit(entry.runs, first, last):
                continue
            # Squeezed indices for now: min/max (combinations, alert spans) commute with
            # the monotone map to raw offsets, which is made for alerts only.
            if scorer is None:
                scorer = Scorer(c, ends_inclusive=True)
            if last != group:  # the hits ending at the previous character are all in
                if not fire(group):
                    return None
                group = last
                # Hard gaps up to the hit, as streamed (``found`` is sorted by ``last``).
                scorer.words += s.count(SEP, counted, last + 1)
                counted = last + 1
                if held:  # as the stream: settled before the first hit past their sentence
                    if bounds is None:
                        bounds = [m.start() for m in _SENTENCE_END.finditer(text)]
                    ready, held = _ready(held, scorer.words, c.hold_words,
                                         _ended(bounds, at.span(last, last)[0]))  # fmt: skip
                    alerts.extend(_settled(c, ready, scorer.guards, bounds, at))
            scorer.add(entry, first, last)
    if not fire(group):
        return None
    if held and scorer is not None and at is not None:
        if bounds is None:
            bounds = [m.start() for m in _SENTENCE_END.finditer(text)]
        alerts.extend(_settled(c, list(held), scorer.guards, bounds, at))
    return alerts


def _settled(c: Compiled, held: list[Held], guards: tuple[GuardSeen, ...], bounds: list[int],
             at: _Offsets) -> list[Alert]:  # fmt: skip
    """The bulk path's ``Stream._settle``: positions are squeezed, sentence ends raw."""
    same = _sentences(bounds)

    def same_sentence(a: int, b: int) -> bool:
        return same(at.span(a, a)[0], at.span(b, b)[0])

    return [alert for fired, alert in held
            if guarded_score(c, fired, guards, same_sentence) >= alert.threshold]  # fmt: skip


class _Offsets:
    """Per squeezed character: its run length, whether a deleted gap precedes it (soft),
    and its raw span; from the few places where lengths change (runs, collapsed gaps,
    multiple separators, characters whose fold is not one character), found with C-speed
    regex scans when first needed. Lookups bisect."""

    __slots__ = ("_cut_pos", "_cut_shift", "_fold_at", "_fold_end", "_gap_pos", "_gap_shift",
                 "_mapped", "_odd_shift", "_parts", "_raw_at", "_run_pos", "_run_shift",
                 "_soft", "_text", "runs")  # fmt: skip

    def __init__(self, text: str, parts: Parts) -> None:
        self._text, self._parts = text, parts
        self.runs: dict[int, int] = {}  # squeezed index -> run length, where not 1
        self._run_pos, self._run_shift = _shifts(RUNS, parts.unsqueezed, self.runs)
        self._gap_pos: list[int] | None = None  # made by ``_spaced``
        self._gap_shift: list[int] = []
        # Gaps deleted between one-letter tokens: where the next character lands in
        # ``spaced`` (it is soft), and the characters deleted up to and including each.
        self._cut_pos: list[int] = []
        self._cut_shift: list[int] = []
        if parts.collapsed:
            shift = 0
            for m in COLLAPSE.finditer(parts.body):
                a, b = m.span()
                self._cut_pos.append(a - shift)
                shift += b - a
                self._cut_shift.append(shift)
        self._soft = frozenset(self._cut_pos)
        # Filled by ``span``: raw characters whose fold is not one character, where their
        # fold begins and ends in the folded text, their raw index, folded minus raw after.
        self._mapped = False
        self._fold_at: list[int] = []
        self._fold_end: list[int] = []
        self._raw_at: list[int] = []
        self._odd_shift: list[int] = []

    def runs_fit(self, need: bytes, first: int, last: int) -> bool:
        """As ``_fits``: each run as written, or stretched to 3 or more."""
        pos = self._run_pos
        lo, hi = bisect_left(pos, first), bisect_right(pos, last)
        if lo == hi:  # no runs here: all 1
            return not need or max(need) < 2
        runs = self.runs
        if not need:  # a phrase without doubled letters: no doubled letter here (or 3+)
            s = self._parts.squeezed
            return all(runs.get(p, 1) != 2 or s[p] == SEP for p in pos[lo:hi])
        for k, want in enumerate(need):
            have = runs.get(first + k, 1)
            if want and have != want and have < max(3, want):
                return False
        return True

    def _spaced(self, p: int, last: bool) -> int:
        """Index in ``Parts.spaced`` of squeezed character ``p`` (its run's last if
        ``last``)."""
        i = bisect_left(self._run_pos, p)
        q = p + (self._run_shift[i - 1] if i else 0)  # unsqueezed index of the run's start
        if last:
            q += self.runs.get(p, 1) - 1
        if self._gap_pos is None:
            self._gap_pos, self._gap_shift = _shifts(SPACES, self._parts.spaced, None)
        i = bisect_left(self._gap_pos, q)
        return q + (self._gap_shift[i - 1] if i else 0)

    def soft(self, p: int) -> bool:
        return self._spaced(p, False) in self._soft

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Raw span from squeezed character ``first`` to ``last`` (both included)."""
        self._map()
        return self._raw(first, False), self._raw(last, True) + 1

    def settled_by(self, j: int) -> int:
        """At most how many raw characters the stream has been fed when it appends
        squeezed character ``j``: the normaliser holds back at most one folded character
        (a one-letter token, or a gap until the next token has two letters), so ``j`` is
        out once the folded character after the start of ``j + 1`` has been fed."""
        self._map()
        if j + 1 >= len(self._parts.squeezed):
            return len(self._text)
        f = self._folded(j + 1, False) + 1
        if f >= len(self._parts.folded):
            return len(self._text)
        return self._raw_of(f) + 1

    def _map(self) -> None:
        if not self._mapped:
            self._mapped = True
            text = self._text
            odd = text.translate(ODD)
            if odd:
                shift = 0
                for m in _odd_regex(odd).finditer(text):
                    r = m.start()
                    size = len(FOLD[ord(text[r])])
                    self._fold_at.append(r + shift)
                    self._fold_end.append(r + shift + size)
                    self._raw_at.append(r)
                    shift += size - 1
                    self._odd_shift.append(shift)

    def _folded(self, p: int, last: bool) -> int:
        x = self._spaced(p, last)
        i = bisect_right(self._cut_pos, x)
        return x + (self._cut_shift[i - 1] if i else 0) + self._parts.lead

    def _raw(self, p: int, last: bool) -> int:
        return self._raw_of(self._folded(p, last))

    def _raw_of(self, f: int) -> int:
        """Raw index of folded character ``f``."""
        i = bisect_right(self._fold_at, f) - 1
        if i < 0:
            return f
        return self._raw_at[i] if f < self._fold_end[i] else f - self._odd_shift[i]


def _shifts(rx: re.Pattern[str], s: str,
            sizes: dict[int, int] | None) -> tuple[list[int], list[int]]:  # fmt: skip
    """Where ``rx``'s matches in ``s`` shrink to one character: their index in the shrunk
    string, and the characters removed up to and including each."""
    pos: list[int] = []
    shifts: list[int] = []
    shift = 0
    for m in rx.finditer(s):
        a, b = m.span()
        pos.append(a - shift)
        if sizes is not None:
            sizes[a - shift] = b - a
        shift += b - a - 1
        shifts.append(shift)
    return pos, shifts


_ODD_RX: dict[str, re.Pattern[str]] = {}


def _odd_regex(odd: str) -> re.Pattern[str]:
    key = "".join(sorted(set(odd)))
    rx = _ODD_RX.get(key)
    if rx is None:
        if len(_ODD_RX) > 256:
            _ODD_RX.clear()
        rx = _ODD_RX[key] = re.compile("[" + "".join(map(re.escape, key)) + "]")
    return rx
