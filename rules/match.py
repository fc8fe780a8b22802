"""The keyword matcher: pure, text in and alerts out.

``Stream`` takes one keystroke at a time (``feed``, ``backspace``, ``delete``, ``reset``)
and never rescans: each keystroke advances the normaliser and the automaton by a step and
pushes a small snapshot, so Backspace pops one. ``match_text`` is the bulk path: C-speed
normalisation and ``pyahocorasick`` rule most texts out; a text that may hold a hit goes
through the very same ``Stream`` so both paths agree exactly.

An ``Alert`` carries the terms, the score, raw offsets and a few words of context capped
in words and characters; nothing more of the typed text leaves this module.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from rules.compile import Compiled, Entry
from rules.normalise import SEP, Squeezed, StreamNormaliser, fast_squeeze
from rules.scoring import Hit, Scorer

HISTORY = 512  # keystrokes Backspace can undo, and characters kept for context


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
        self.standing: tuple[Alert, ...] = ()  # alerts of the text as it stands now

    # -- keystrokes -------------------------------------------------------------------
    def feed(self, ch: str) -> list[Alert]:
        """One typed character (a str of length 1). Returns alerts not reported before."""
        sq = self._sq
        last = (sq.runs[-1], sq.ends[-1]) if sq.chars else (0, 0)
        self._history.append((self._norm.state(), len(sq), last, self._state, self._done,
                              self._pending, self._score.state(), self.standing))  # fmt: skip
        at = self._raw_base + len(self._raw)
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

    def backspace(self) -> None:
        """Undo the last keystroke. Past the bounded history the text is forgotten."""
        if not self._history:
            self._clear()
            return
        norm, n, (run, end), state, done, pending, score, standing = self._history.pop()
        if n < self._sq.base or not self._raw:
            self._clear()
            return
        self._raw.pop()
        self._norm.restore(norm)
        self._sq.truncate(n, run, end)
        self._state, self._done, self._pending = state, done, pending
        self._score.restore(score)
        self.standing = standing

    def delete(self) -> None:
        """Forward Delete at the end of the text deletes nothing. (A keyboard sensor that
        sees the cursor move should call ``reset``: the stream models appending only.)"""

    def finish(self) -> list[Alert]:
        """End of the text: settle what is pending. ``standing`` then holds every alert
        of the final text. Call ``reset`` before typing on."""
        self._norm.flush()
        out = self._advance()
        out.extend(self._resolve(True))
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
        while self._done < len(sq):
            j = self._done
            c = sq.chars[j - sq.base]
            if self._pending:
                out.extend(self._resolve(c == SEP or sq.soft[j - sq.base]))
            if c == SEP:
                self._score.words += 1
            self._state = auto.step(self._state, ord(c))
            self._done = j + 1
            found = tuple((pid, j + 1) for pid in auto.outputs(self._state))
            if found:
                self._pending += found
        return out

    def _resolve(self, end_ok: bool) -> list[Alert]:
        """Settle candidates now that the character after them is known."""
        out: list[Alert] = []
        pending, self._pending = self._pending, ()
        sq = self._sq
        for pid, end in pending:
            start = end - self.c.automaton.lengths[pid]
            i = start - sq.base
            if i < 0:
                continue  # fell out of the bounded history
            start_ok = i == 0 or sq.chars[i - 1] == SEP or sq.soft[i]
            for entry in self.c.entries[pid]:
                if _fits(entry, start_ok, end_ok, sq.runs, i):
                    hit = Hit(entry.phrase, entry.weight, sq.starts[i], sq.ends[end - 1 - sq.base],
                              entry.exempt)  # fmt: skip
                    for fired in self._score.add(entry, hit):
                        out.extend(self._alert(*fired))
        return out

    def _alert(self, cat: int, score: int, hits: tuple[Hit, ...], suppressed: bool) -> list[Alert]:
        category = self.c.categories[cat]
        start, end = min(h.start for h in hits), max(h.end for h in hits)
        ex = tuple(sorted({x for h in hits for x in h.exempt})) if suppressed else ()
        terms = tuple(dict.fromkeys(h.phrase for h in hits))
        alert = Alert(category.name, score, category.threshold, terms, start, end,
                      self._context(end), suppressed, ex)  # fmt: skip
        self.standing += (alert,)
        key = (alert.category, start, end, terms, suppressed)
        if key in self._emitted:  # typed, erased and typed again: reported once
            return []
        self._emitted.add(key)
        return [alert]

    def _context(self, end: int) -> str:
        """At most N words / M characters of what was typed, ending at the match."""
        pol = self.c.policy
        hi = end - self._raw_base
        seg = "".join(self._raw[max(0, hi - 4 * pol.context_chars) : hi])
        words = seg.split()[-pol.context_words :]
        return " ".join(words)[-pol.context_chars :]


def _fits(entry: Entry, start_ok: bool, end_ok: bool, runs: list[int], i: int) -> bool:
    b = entry.boundary
    if (b in ("word", "start") and not start_ok) or (b in ("word", "end") and not end_ok):
        return False
    for k, need in enumerate(entry.runs):
        # A run typed as written matches; a longer one only if stretched (3+), so "as"
        # is not "ass" and "good" is not "god", but "kiiiill" is "kill".
        have = runs[i + k]
        if need and have != need and have < max(3, need):
            return False
    return True


def match_text(compiled: Compiled, text: str) -> list[Alert]:
    """Bulk path: the alerts of a whole text, identical to streaming it then ``reset``."""
    if not compiled.patterns:
        return []
    squeezed, unsqueezed, soft = fast_squeeze(text)
    if not soft and not _candidates(compiled, squeezed, unsqueezed):
        return []
    stream = Stream(compiled)
    stream.feed_text(text)
    stream.finish()
    return list(stream.standing)


def _candidates(compiled: Compiled, s: str, unsqueezed: str) -> bool:
    """Whether any pattern occurs with the boundaries and run lengths it needs. It may
    over-approximate the exact path (which decides), never under-approximate it."""
    n = len(s)
    words: list[str] | None = None
    seen: dict[int, int] = {}  # combination -> bit set of the parts found
    lengths = compiled.automaton.lengths
    need_start, need_end = compiled.need_start, compiled.need_end
    for last, pid in compiled.bulk.iter(s):
        first = last + 1 - lengths[pid]
        if need_start[pid] and first > 0 and s[first - 1] != SEP:
            continue
        if need_end[pid] and last + 1 < n and s[last + 1] != SEP:
            continue
        # Run lengths: find the same words in the unsqueezed text (spaces line up).
        if words is None:
            words = unsqueezed.split(SEP)
        k = s.count(SEP, 0, first)
        segment = SEP.join(words[k : k + s.count(SEP, first, last + 1) + 1])
        if not compiled.run_regex(pid).search(segment):
            continue
        parts = compiled.combo_parts[pid]
        if not parts:
            return True
        # Only combination parts ("how", "you"...): a candidate once all parts are seen.
        for k, bit in parts:
            seen[k] = seen.get(k, 0) | bit
            if seen[k] == compiled.combo_full[k]:
                return True
    return False
