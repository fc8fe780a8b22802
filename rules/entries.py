"""What each phrase of the automaton means, held compactly.

The shipped lists compile to about 100,000 phrases with 127,000 meanings (``Entry``): a term
of a category, a part of a combination, a segment of a pattern with gaps, a guard. As one
object per meaning, in a tuple per phrase, they took 15 MB of the agent's memory. Most of
an entry is its list entry's (category, weight, phrase, exemptions ...), shared by all the
phrases a pattern expands to; what differs per phrase (the run lengths of its doubled
letters, its word count, its member key) is held here in flat arrays. ``table[pid]`` makes
the entries of one phrase when the matcher meets it, and keeps the most recent ones.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from rules.schema import Boundary

CACHED = 4096  # phrases whose entries are kept made: typing meets the same few often


@dataclass(frozen=True, slots=True)
class Entry:
    """One meaning of a pattern: a term of a category, or one part of a combination."""

    category: int
    weight: int
    boundary: Boundary
    runs: bytes  # run length each squeezed character needs; 0 for a space
    phrase: str  # the list entry's phrase or pattern, as the DSL sees it
    combo: int = -1
    part: int = -1
    exempt: tuple[str, ...] = ()  # ids of the exemptions that cover this entry
    rule: int = -1  # a pattern with gaps: its index in ``Compiled.sequences``
    seg: int = -1  # ... and which of its segments this phrase is
    seps: int = 0  # word gaps inside the phrase (its first word = its last minus this)
    guard: int = -1  # a guard: its index in ``Compiled.guards``
    member: int = -1  # a phrase of a sequence's non-trigger segment: its member key


class EntryTable:
    """Per pattern id, its entries: ``table[pid]`` is a tuple of ``Entry``."""

    __slots__ = ("_cache", "_meaning", "_meanings", "_members", "_runs", "_runs_of", "_seps",
                 "_start")  # fmt: skip

    def __init__(self, per_pattern: Sequence[Sequence[Entry]]) -> None:
        meanings: dict[Entry, int] = {}
        runs_of: dict[bytes, int] = {b"": 0}
        self._start = array("I", [0])
        self._meaning, self._runs, self._members = array("I"), array("I"), array("i")
        seps = bytearray()
        for entries in per_pattern:
            for e in entries:
                bare = replace(e, runs=b"", seps=0, member=-1)
                self._meaning.append(meanings.setdefault(bare, len(meanings)))
                self._runs.append(runs_of.setdefault(e.runs, len(runs_of)))
                self._members.append(e.member)
            self._start.append(len(self._meaning))
            seps.append(entries[0].seps if entries else 0)  # the phrase's, in every entry
        self._seps = bytes(seps)
        # Two bytes an index where they fit (3,600 meanings and 13,000 run lengths for the
        # shipped lists; 128,000 of each index): 0.5 MB less than four.
        self._meaning, self._runs = _narrow(self._meaning), _narrow(self._runs)
        if all(-(1 << 15) <= m < 1 << 15 for m in self._members):
            self._members = array("h", self._members)
        self._meanings = tuple(meanings)
        self._runs_of = tuple(runs_of)
        self._cache: dict[int, tuple[Entry, ...]] = {}

    def __len__(self) -> int:
        return len(self._start) - 1

    def __getitem__(self, pid: int) -> tuple[Entry, ...]:
        found = self._cache.get(pid)
        if found is None:
            found = tuple(self._make(pid))
            if len(self._cache) >= CACHED:
                self._cache.clear()  # (threads may share a table: dict calls are atomic)
            self._cache[pid] = found
        return found

    def boundaries(self, pid: int) -> Iterator[Boundary]:
        """The boundaries of a phrase's entries, without making them."""
        meanings = self._meanings
        for k in range(self._start[pid], self._start[pid + 1]):
            yield meanings[self._meaning[k]].boundary

    def _make(self, pid: int) -> Iterator[Entry]:
        seps = self._seps[pid]
        for k in range(self._start[pid], self._start[pid + 1]):
            e, runs, member = self._meanings[self._meaning[k]], self._runs[k], self._members[k]
            if runs or seps or member >= 0:
                e = Entry(e.category, e.weight, e.boundary, self._runs_of[runs], e.phrase,
                          e.combo, e.part, e.exempt, e.rule, e.seg, seps, e.guard, member)
            yield e

    def nbytes(self) -> int:
        arrays = (self._start, self._meaning, self._runs, self._members)
        return sum(a.itemsize * len(a) for a in arrays) + len(self._seps)


def _narrow(values: array[int]) -> array[int]:
    """Unsigned indexes in two bytes each, if they fit."""
    return array("H", values) if max(values, default=0) < 1 << 16 else values
