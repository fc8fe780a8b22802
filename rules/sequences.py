"""Patterns with gaps (``a ...3 b``), compiled so that common words cost nothing.

A sequence's segments are phrases like any other in the automaton. Checking a sequence at
every hit of every segment would cost, at each "you", "her" or "the", a look at every rule
that has such a word in a segment: hundreds of rules in the shipped lists, and the reason
typing slowed tenfold when they arrived. Instead each rule has one *trigger*: the segment
whose phrases are least common in ordinary text (a fixed list of frequent words decides).
Other segments' phrases are *members*: a hit of one is only appended to a short history
of recent member hits (one small tuple, whatever the number of rules). When a trigger
hits, the segments before it are looked up in that history (newest first, stopping at the
gap), and the segments after it are *armed*: later member hits are checked against the
few armed rules only. So work follows the rare words, not the common ones.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rules.normalise import normalise

# Words frequent in pupils' typing (schoolwork and chat), roughly most frequent first. A
# segment made of these fires constantly, so it is never a sequence's trigger if another
# segment can be.
_WORDS = """
the i you to a and it is of in that my me u im on for be so this was have just like
dont your what but not do are we with its no can get at they if all know ur he she her
him them up out go lol one will about got when how there or who would think some people
really now want see time did been make going then need much more good yeah yes ok okay
oh well still back any why because cos cuz bc by from an as our us his their has had
were could should say said tell told never ever always love day night today tomorrow
school home mum dad mate mates friend friends thing things ill id ive youre thats theres
cant wont didnt doesnt isnt arent wasnt ya yu r pls please thanks thx omg tbh ngl rn idk
wdym wyd bro fam innit man guys hey hi here where which very too also even only over off
after before again into than other every everyone someone something nothing anything way
down first last new old big little lot lots bit right left give take come came went look
looks feel feels put keep let help show send sent talk call try trying gonna wanna gotta
kinda sorta literally actually maybe probably proper same different kind sure nice cool
fine bad sad happy funny weird real
"""
COMMON = tuple(normalise(w).text().strip() for w in _WORDS.split())
_FLOOR = 100  # a word of the list above is at least this common (chat is under-counted)
_RARE = 0.5  # a word of neither list


@cache
def _counts() -> dict[str, float]:
    """Word counts in ordinary typing: rules/common_words.txt (scripts/common-words), with
    the chat words above raised to ``_FLOOR``."""
    counts: dict[str, float] = {}
    path = Path(__file__).with_name("common_words.txt")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            word, n = line.rsplit(" ", 1)
            counts[word] = float(n)
    for word in COMMON:
        counts[word] = max(counts.get(word, 0.0), _FLOOR)
    return counts


def commonness(phrase: str) -> float:
    """Roughly how often a phrase turns up in ordinary typing: a word by its count, a phrase
    of several words by its rarest word's, divided by 10 per extra word (a guess: words
    together are rarer than apart)."""
    counts = _counts()
    words = normalise(phrase).text().split()
    if not words:
        return 0.0
    return float(min(counts.get(w, _RARE) for w in words)) / 10.0 ** (len(words) - 1)


MERGE_LIMIT = 48  # phrases a merged segment may have (memory: see rules/pattern.py CHUNK)


def merged(segments: tuple[tuple[str, ...], ...], gaps: tuple[int, ...]
           ) -> tuple[tuple[tuple[str, ...], ...], tuple[int, ...]]:  # fmt: skip
    """Adjacent segments with no gap (``a ...0 b``) joined into one of phrases "a b" while
    the product stays small (smallest first): the automaton then finds them in one go, at
    C speed in bulk, instead of a rule waiting on two common words. A pattern that merges
    whole is a plain phrase list. (Joined, one-letter words meet as typed: "r ...0 u" then
    matches "r u", read "ru", as the phrase "r u" does.)"""
    segs, gs = list(segments), list(gaps)
    while True:
        sizes = [(len(segs[i]) * len(segs[i + 1]), i) for i, g in enumerate(gs) if g == 0]
        sizes = [(n, i) for n, i in sizes if n <= MERGE_LIMIT]
        if not sizes:
            return tuple(segs), tuple(gs)
        _, i = min(sizes)
        joined = tuple(dict.fromkeys(f"{a} {b}" for a in segs[i] for b in segs[i + 1]))
        segs[i : i + 2] = [joined]
        del gs[i]


def trigger(segments: tuple[tuple[str, ...], ...]) -> int:
    """The segment to trigger on: the one whose phrases together are least common in
    ordinary typing; on a tie, the later one (fewer segments then have to be waited for)."""
    scores = [sum(commonness(p) for p in seg) for seg in segments]
    return min(range(len(segments)), key=lambda i: (scores[i], -i))


class Members:
    """The member keys of one segment: a sorted array searched by halves (a frozenset of
    the 53,000 keys of the shipped lists' segments took 4 MB of a PC's memory; this 0.6)."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[int] = ()) -> None:
        self._keys = array("I", sorted(set(keys)))

    def __contains__(self, key: int) -> bool:
        keys = self._keys
        i = bisect_left(keys, key)
        return i < len(keys) and keys[i] == key

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Members) and self._keys == other._keys

    def __hash__(self) -> int:
        return hash(self._keys.tobytes())


@dataclass(frozen=True, slots=True)
class SequenceRule:
    """A pattern with gaps: segment ``i + 1`` starts within ``gaps[i]`` words after
    segment ``i`` ends. ``groups[i]`` holds the member keys of segment ``i`` (empty for
    the trigger segment, whose phrases are entries of their own)."""

    category: int
    phrase: str
    weight: int
    gaps: tuple[int, ...]
    trigger: int
    groups: tuple[Members, ...]
    exempt: tuple[str, ...]  # exemptions that cover the whole pattern or its category
    spans: tuple[int, ...]  # the most words a phrase of each segment has
    guard: int = -1  # a large guard stored in pieces: its index in ``Compiled.guards``
