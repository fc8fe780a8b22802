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

from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rules.compile import Compiled
    from rules.sequences import Members

# Sets of pattern ids, each of which the message must meet for a rule to be possible, and
# whether the rule adds a positive weight (one that only lowers a score raises no alert).
Need = tuple[tuple[frozenset[int], ...], bool]


class Gate:
    """Built once per compiled policy, on the bulk path's first use."""

    __slots__ = ("_guards", "_hot", "_needs", "_off", "_plain", "_plain_pids", "_thresholds")

    def __init__(self, c: Compiled) -> None:
        parts: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        key_pids: defaultdict[int, set[int]] = defaultdict(set)
        triggers: defaultdict[int, set[int]] = defaultdict(set)  # pid -> sequence rules
        plain: defaultdict[int, list[tuple[int, int]]] = defaultdict(list)
        guards: set[int] = set()
        for pid in range(c.pattern_count):
            for e in c.entries[pid]:
                if e.member >= 0:
                    key_pids[e.member].add(pid)
                elif e.guard >= 0 or (e.rule >= 0 and c.sequences[e.rule].guard >= 0):
                    guards.add(pid)
                elif e.rule >= 0:
                    triggers[pid].add(e.rule)
                elif e.combo >= 0:
                    parts[e.combo, e.part].add(pid)
                else:
                    plain[pid].append((e.category, e.weight))
        groups: dict[int, frozenset[int]] = {}  # id of a shared ``Members`` -> its pids

        def pids_of(group: Members) -> frozenset[int]:
            found = groups.get(id(group))
            if found is None:
                found = groups[id(group)] = frozenset(
                    p for key in group for p in key_pids.get(key, ()))  # fmt: skip
            return found

        needs: defaultdict[int, set[Need]] = defaultdict(set)
        for pid, rules in triggers.items():
            for r in rules:
                rule = c.sequences[r]
                others = (pids_of(g) for i, g in enumerate(rule.groups) if i != rule.trigger)
                # (the smallest set first: the likeliest to be absent, and the quickest)
                needs[pid].add((tuple(sorted(others, key=len)), rule.weight > 0))
        part_pids = {k: frozenset(v) for k, v in parts.items()}
        for (combo, part), pids in part_pids.items():
            size = len(c.combos[combo].parts)
            others = (part_pids.get((combo, i), frozenset()) for i in range(size) if i != part)
            need = (tuple(sorted(others, key=len)), c.combos[combo].weight > 0)
            for pid in pids:
                needs[pid].add(need)
        self._needs = {pid: tuple(n) for pid, n in needs.items()}
        self._plain = {pid: tuple(w) for pid, w in plain.items()}
        self._plain_pids = frozenset(self._plain)
        self._hot = frozenset(self._needs) | self._plain_pids
        self._guards = frozenset(guards)
        self._thresholds = tuple(cat.threshold for cat in c.categories)
        # A threshold of 0 or less is reached without a positive weight: no gate then.
        self._off = any(t <= 0 for t in self._thresholds)

    def keep(self, pids: list[int]) -> set[int] | None:
        """Of a message's hits (pattern ids, each as often as it occurs), the ids whose
        hits can change a score; None when no alert is possible at all."""
        present = set(pids)
        if self._off:
            return present
        hot = present & self._hot
        if not hot:
            return None
        kept = hot & self._plain_pids  # any weight: a negative one lowers a window
        possible = bool(kept) and self._plain_may_alert(kept, pids)
        needs = self._needs
        for pid in hot:
            for need, raises in needs.get(pid, ()):
                for one_of in need:
                    if present.isdisjoint(one_of):
                        break
                else:
                    possible = possible or raises
                    kept.add(pid)
                    for one_of in need:
                        kept.update(present.intersection(one_of))
        if not possible:
            return None
        kept.update(present.intersection(self._guards))
        return kept

    def _plain_may_alert(self, plain: set[int], pids: list[int]) -> bool:
        """Whether the plain terms' positive weights, every occurrence counted and windows
        ignored, reach a category's threshold."""
        sums = [0] * len(self._thresholds)
        for pid in plain:
            n = pids.count(pid)
            for cat, weight in self._plain[pid]:
                if weight > 0:
                    sums[cat] += weight * n
        return any(s >= t for s, t in zip(sums, self._thresholds, strict=True))
