"""Which of a message's hits can matter to an alert (the bulk path only).

A school text hits a sequence member, a sequence trigger or a combination part every word
or two (the lists hold common words inside gapped patterns and combinations), and almost
none of those hits completes anything. Before ``match_text`` does the Python work of each
hit, the gate asks of each rule whether the message could complete it:

- a *sequence* needs a phrase of every segment, in order, each starting within its gap of
  words after the one before ends;
- a *combination* needs a phrase of every part within its window of words;
- a *plain term* counts its weight wherever it is.

First with the set of phrases the message holds (C-speed set operations), then, for the
few rules that pass, with the word positions of their hits. A hit that serves no possible
rule (a member no possible sequence needs, a part of a combination that cannot be whole)
changes no score, so it is dropped; a message left with nothing that can reach a
category's threshold has no alerts at all. Guards only lower scores, so they are kept
exactly when something else is. Boundaries, run lengths, windows of categories and
exemptions are ignored: the gate can only keep too much, never too little, and what it
keeps is then scored as before (the differential tests hold bulk and stream together).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple, cast

from rules.normalise import SEP

if TYPE_CHECKING:
    from rules.compile import Compiled
    from rules.entries import EntryTable
    from rules.sequences import Members

NEEDS, PLAIN, GUARD = 1, 2, 4  # per pattern id: a trigger or part; a plain term; a guard
Spots = dict[int, list[tuple[int, int]]]  # pattern id -> (first word, last word) of its hits


class Rule(NamedTuple):
    """What a sequence or a combination needs of a message."""

    others: tuple[frozenset[int], ...]  # the sets besides the hit's own, smallest first
    raises: bool  # adds a positive weight (one that only lowers raises no alert)
    sets: tuple[frozenset[int], ...]  # a sequence's segments in order; a combo's parts
    gaps: tuple[int, ...]  # a sequence's gaps in words; () for a combination
    window: int  # a combination's window in words; -1 for a sequence


class Gate:
    """Built once per compiled policy, on the bulk path's first use. Per pattern id a byte
    of flags, its word count and an index into the distinct lists of rules (a class's
    phrases share one), so that it holds about 4 MB with the shipped lists."""

    __slots__ = ("_entries", "_flags", "_off", "_rule_of", "_rules", "_seps", "_thresholds")

    def __init__(self, c: Compiled) -> None:
        n = c.pattern_count
        flags, seps = bytearray(n), bytearray(n)
        parts: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
        key_pids: defaultdict[int, list[int]] = defaultdict(list)
        triggers: defaultdict[int, list[int]] = defaultdict(list)  # rule -> trigger pids
        for pid in range(n):
            for e in c.entries[pid]:
                seps[pid] = min(e.seps, 255)  # the phrase's: the same in each entry
                if e.member >= 0:
                    key_pids[e.member].append(pid)
                elif e.guard >= 0 or (e.rule >= 0 and c.sequences[e.rule].guard >= 0):
                    flags[pid] |= GUARD
                elif e.rule >= 0:
                    triggers[e.rule].append(pid)
                elif e.combo >= 0:
                    parts[e.combo, e.part].append(pid)
                else:
                    flags[pid] |= PLAIN
        for seq in c.sequences:  # a guard in pieces: its members lower scores too
            if seq.guard >= 0:
                for group in seq.groups:
                    for member in group:
                        for pid in key_pids[member]:
                            flags[pid] |= GUARD
        shared: dict[object, object] = {}  # one copy of each equal set, rule and list

        def one(pids: Iterable[int]) -> frozenset[int]:
            made = frozenset(pids)
            return cast(frozenset[int], shared.setdefault(made, made))

        def members(group: Members) -> frozenset[int]:
            return one([p for k in group for p in key_pids[k]])

        per_pid: defaultdict[int, set[Rule]] = defaultdict(set)

        def add(rule: Rule, own: frozenset[int], pids: frozenset[int]) -> None:
            others = tuple(sorted((s for s in rule.sets if s is not own), key=len))
            made = cast(Rule, shared.setdefault(rule._replace(others=others),
                                                rule._replace(others=others)))  # fmt: skip
            for pid in pids:
                per_pid[pid].add(made)

        for r, pids in triggers.items():
            seq = c.sequences[r]
            own = one(pids)
            sets = tuple(own if i == seq.trigger else members(g) for i, g in enumerate(seq.groups))
            add(Rule((), seq.weight > 0, sets, seq.gaps, -1), own, own)
        for k, combo in enumerate(c.combos):
            sets = tuple(one(parts.get((k, i), [])) for i in range(len(combo.parts)))
            rule = Rule((), combo.weight > 0, sets, (), combo.window)
            for own in sets:
                add(rule, own, own)
        self._rules: list[tuple[Rule, ...]] = [()]
        index: dict[tuple[Rule, ...], int] = {(): 0}
        self._rule_of = array("I", bytes(4 * n))
        for pid, found in per_pid.items():
            key = tuple(sorted(found, key=id))
            if key not in index:
                index[key] = len(self._rules)
                self._rules.append(key)
            self._rule_of[pid] = index[key]
            flags[pid] |= NEEDS
        self._flags, self._seps = bytes(flags), bytes(seps)
        self._entries: EntryTable = c.entries
        self._thresholds = tuple(cat.threshold for cat in c.categories)
        # A threshold of 0 or less is reached without a positive weight: no gate then.
        self._off = any(t <= 0 for t in self._thresholds)

    def keep(self, pids: list[int], lasts: Callable[[], list[int]],
             squeezed: str) -> set[int] | None:  # fmt: skip
        """Of a message's hits (pattern ids in order, each as often as it occurs), the ids
        whose hits can change a score; None when no alert is possible at all. ``lasts()``
        gives each hit's last character in ``squeezed``, asked for only if needed."""
        present = set(pids)
        if self._off:
            return present
        flags = self._flags
        hot = [p for p in present if flags[p] & (NEEDS | PLAIN)]
        if not hot:
            return None
        kept = {p for p in hot if flags[p] & PLAIN}  # any weight: a negative one lowers
        possible = bool(kept) and self._plain_may_alert(kept, pids)
        rule_of, rules = self._rule_of, self._rules
        passed: dict[int, Rule] = {}  # by id: rules whose phrases are all here
        for pid in hot:
            for rule in rules[rule_of[pid]]:
                for one_of in rule.others:
                    if present.isdisjoint(one_of):
                        break
                else:
                    passed[id(rule)] = rule
        if passed:
            wanted: set[int] = set()
            for rule in passed.values():
                for one_of in rule.sets:
                    wanted.update(present.intersection(one_of))
            spots = self._spots(pids, lasts(), squeezed, wanted)
            for rule in passed.values():
                if _in_order(rule, spots) if rule.window < 0 else _in_window(rule, spots):
                    possible = possible or rule.raises
                    for one_of in rule.sets:
                        kept.update(present.intersection(one_of))
        if not possible:
            return None
        kept.update(p for p in present if flags[p] & GUARD)
        return kept

    def _spots(self, pids: list[int], lasts: list[int], squeezed: str,
               wanted: set[int]) -> Spots:  # fmt: skip
        """The first and last word of each hit of ``wanted``, counted as the scorer counts
        them (separators up to the hit's last character)."""
        spots: Spots = {}
        seps = self._seps
        for pid, last in zip(pids, lasts, strict=True):
            if pid in wanted:
                words = squeezed.count(SEP, 0, last + 1)
                spots.setdefault(pid, []).append((words - seps[pid], words))
        return spots

    def _plain_may_alert(self, plain: set[int], pids: list[int]) -> bool:
        """Whether the plain terms' positive weights, every occurrence counted and windows
        ignored, reach a category's threshold."""
        sums = [0] * len(self._thresholds)
        for pid in plain:
            times = pids.count(pid)
            for e in self._entries[pid]:
                plain_term = e.member < 0 and e.guard < 0 and e.rule < 0 and e.combo < 0
                if plain_term and e.weight > 0:
                    sums[e.category] += e.weight * times
        return any(s >= t for s, t in zip(sums, self._thresholds, strict=True))


def _words(one_of: frozenset[int], spots: Spots) -> list[tuple[int, int]]:
    return [w for pid in one_of.intersection(spots) for w in spots[pid]]


def _in_order(rule: Rule, spots: Spots) -> bool:
    """Whether hits of the segments can follow each other as the scorer requires: each
    segment's first word within its gap after the previous segment's last."""
    ends = {last for _, last in _words(rule.sets[0], spots)}
    for gap, one_of in zip(rule.gaps, rule.sets[1:], strict=True):
        ends = {last for first, last in _words(one_of, spots)
                if any(0 <= first - end - 1 <= gap for end in ends)}  # fmt: skip
        if not ends:
            return False
    return True


def _in_window(rule: Rule, spots: Spots) -> bool:
    """Whether some hit of a part has a hit of every part at most ``window`` words before
    it (the scorer's test when the last part arrives)."""
    lasts = [[last for _, last in _words(one_of, spots)] for one_of in rule.sets]
    for at in {w for part in lasts for w in part}:
        if all(any(at - rule.window <= w <= at for w in part) for part in lasts):
            return True
    return False
