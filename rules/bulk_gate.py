"""Which of a message's hits can matter to an alert (the bulk path only).

A school text hits a sequence member, a sequence trigger or a combination part every word
or two (the lists hold common words inside gapped patterns and combinations), and almost
none of those hits completes anything. Before ``match_text`` does the Python work of each
hit, the gate looks at the set of phrases the message holds, in any order and anywhere:

- a *combination* can only complete if every one of its parts is in the message;
- a *sequence* can only complete if its trigger and a member of each other segment are;
- a *plain term* counts its weight wherever it is.

A hit that serves none of these (a part of a combination whose other parts are absent, a
member no possible sequence needs) changes no score, so it is dropped; a message left with
nothing that can reach a category's threshold has no alerts at all. Guards only lower
scores, so they are kept exactly when something else is. The check ignores order, gaps,
windows, boundaries and run lengths: it can only keep too much, never too little, and what
it keeps is then scored as before (the differential tests hold bulk and stream together).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from rules.compile import Compiled
    from rules.entries import EntryTable
    from rules.sequences import Members

# Sets of pattern ids, each of which the message must meet for a rule to be possible, and
# whether the rule adds a positive weight (one that only lowers a score raises no alert).
Need = tuple[tuple[frozenset[int], ...], bool]
NEEDS, PLAIN, GUARD = 1, 2, 4  # per pattern id: a trigger or part; a plain term; a guard


class Gate:
    """Built once per compiled policy, on the bulk path's first use. Per pattern id a byte
    of flags and an index into the distinct lists of needs (a class's phrases share one),
    so that it holds about 4 MB with the shipped lists."""

    __slots__ = ("_entries", "_flags", "_need_of", "_needs", "_off", "_thresholds")

    def __init__(self, c: Compiled) -> None:
        n = c.pattern_count
        flags = bytearray(n)
        parts: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
        key_pids: defaultdict[int, list[int]] = defaultdict(list)
        triggers: defaultdict[int, set[int]] = defaultdict(set)  # pid -> sequence rules
        for pid in range(n):
            for e in c.entries[pid]:
                if e.member >= 0:
                    key_pids[e.member].append(pid)
                elif e.guard >= 0 or (e.rule >= 0 and c.sequences[e.rule].guard >= 0):
                    flags[pid] |= GUARD
                elif e.rule >= 0:
                    triggers[pid].add(e.rule)
                elif e.combo >= 0:
                    parts[e.combo, e.part].append(pid)
                else:
                    flags[pid] |= PLAIN
        shared: dict[object, object] = {}  # one copy of each equal set, need and list

        def one(x: object) -> object:
            return shared.setdefault(x, x)

        def pids_of(group: Members) -> frozenset[int]:
            return cast(frozenset[int], one(frozenset(p for k in group for p in key_pids[k])))

        def need(sets: list[frozenset[int]], weight: int) -> Need:
            # (the smallest set first: the likeliest to be absent, and the quickest)
            return cast(Need, one((tuple(sorted(sets, key=len)), weight > 0)))

        per_pid: defaultdict[int, set[Need]] = defaultdict(set)
        by_rule: dict[int, Need] = {}
        for pid, rules in triggers.items():
            for r in rules:
                if r not in by_rule:
                    rule = c.sequences[r]
                    by_rule[r] = need([pids_of(g) for i, g in enumerate(rule.groups)
                                       if i != rule.trigger], rule.weight)  # fmt: skip
                per_pid[pid].add(by_rule[r])
        part_pids = {k: cast(frozenset[int], one(frozenset(v))) for k, v in parts.items()}
        for (combo, part), pids in part_pids.items():
            whole = c.combos[combo]
            made = need([part_pids.get((combo, i), frozenset()) for i in range(len(whole.parts))
                         if i != part], whole.weight)  # fmt: skip
            for pid in pids:
                per_pid[pid].add(made)
        self._needs: list[tuple[Need, ...]] = [()]
        index: dict[tuple[Need, ...], int] = {(): 0}
        self._need_of = array("I", bytes(4 * n))
        for pid, found in per_pid.items():
            key = tuple(sorted(found, key=id))
            if key not in index:
                index[key] = len(self._needs)
                self._needs.append(key)
            self._need_of[pid] = index[key]
            flags[pid] |= NEEDS
        self._flags = bytes(flags)
        self._entries: EntryTable = c.entries
        self._thresholds = tuple(cat.threshold for cat in c.categories)
        # A threshold of 0 or less is reached without a positive weight: no gate then.
        self._off = any(t <= 0 for t in self._thresholds)

    def keep(self, pids: list[int]) -> set[int] | None:
        """Of a message's hits (pattern ids, each as often as it occurs), the ids whose
        hits can change a score; None when no alert is possible at all."""
        present = set(pids)
        if self._off:
            return present
        flags = self._flags
        hot = [p for p in present if flags[p] & (NEEDS | PLAIN)]
        if not hot:
            return None
        kept = {p for p in hot if flags[p] & PLAIN}  # any weight: a negative one lowers
        possible = bool(kept) and self._plain_may_alert(kept, pids)
        need_of, needs = self._need_of, self._needs
        for pid in hot:
            for sets, raises in needs[need_of[pid]]:
                for one_of in sets:
                    if present.isdisjoint(one_of):
                        break
                else:
                    possible = possible or raises
                    kept.add(pid)
                    for one_of in sets:
                        kept.update(present.intersection(one_of))
        if not possible:
            return None
        kept.update(p for p in present if flags[p] & GUARD)
        return kept

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
