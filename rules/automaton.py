"""A compact Aho-Corasick automaton that can be stepped one character at a time.

The keyboard path needs to save and restore the automaton state on every keystroke (for
Backspace), which C libraries do not expose; a state here is one int. Transitions live in
flat ``array`` objects (sorted keys per state, searched with ``bisect``) so a 100,000-phrase
policy stays small; keys are the characters' places in the policy's own alphabet (about
30 normalised characters: one byte each, not four). States are numbered breadth-first with
each state's children in key order, so the i-th transition of the table leads to state
i + 1 and no array of targets is kept (1.9 MB for the shipped lists). Most states end no
pattern (80 % with the shipped lists), so which do is a bitmap with a running count per
64 states, and only their pattern ids are kept; the output links go from pattern-ending
state to pattern-ending state by their places among those (ks2: 3.8 MB of per-state pattern
ids and output links -> 2.8 MB, and one look-up less per keystroke). The bulk path uses
``pyahocorasick`` over whole strings instead, built from this one's phrases when first needed.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator, Sequence


class Automaton:
    __slots__ = ("_base", "_chars", "_ends", "_fail", "_first", "_ids", "_keys", "_next",
                 "_ranks", "_symbols", "lengths")

    def __init__(self, patterns: Sequence[str]) -> None:
        """``patterns`` must be distinct and non-empty; a pattern's id is its index."""
        children: list[dict[int, int]] = [{}]
        term = array("i", [-1])
        for pid, pattern in enumerate(patterns):
            node = 0
            for ch in pattern:
                code = ord(ch)
                nxt = children[node].get(code)
                if nxt is None:
                    nxt = len(children)
                    children[node][code] = nxt
                    children.append({})
                    term.append(-1)
                node = nxt
            term[node] = pid
        n = len(children)
        fail = array("I", bytes(4 * n))
        out = array("I", bytes(4 * n))  # nearest proper suffix state with a term; 0 = none
        queue = deque(children[0].values())
        while queue:
            s = queue.popleft()
            for code, t in children[s].items():
                queue.append(t)
                f = fail[s]
                while f and code not in children[f]:
                    f = fail[f]
                ft = children[f].get(code, 0) if s else 0
                fail[t] = ft
                out[t] = ft if term[ft] >= 0 else out[ft]
        chars = sorted({code for kids in children for code in kids})
        symbols = {code: i for i, code in enumerate(chars)}
        # Breadth-first numbering: ``order`` is the new numbering's states, ``new`` the map.
        order = array("I", [0])
        for s in order:  # (grows as it is read)
            kids = children[s]
            order.extend(kids[code] for code in sorted(kids))
        new = array("I", bytes(4 * n))
        for i, s in enumerate(order):
            new[s] = i
        base = array("I", [0])
        keys = array("B" if len(chars) <= 1 << 8 else "H" if len(chars) <= 1 << 16 else "I")
        for s in order:
            kids = children[s]
            keys.extend(symbols[code] for code in sorted(kids))
            base.append(len(keys))
            kids.clear()  # free as we go: the dicts are the peak of compile memory
        del children
        self._fail = array("I", (new[fail[s]] for s in order))
        self._ends, self._ranks, self._ids = _sparse(term[s] for s in order)
        self._first, self._next = self._chains(array("I", (new[out[s]] for s in order)))
        self._base, self._keys = base, keys
        self._symbols, self._chars = symbols, "".join(map(chr, chars))
        longest = max(map(len, patterns), default=0)
        self.lengths = array("B" if longest < 1 << 8 else "I", map(len, patterns))

    def __len__(self) -> int:
        return len(self._fail)

    def step(self, state: int, code: int) -> int:
        code = self._symbols.get(code, -1)
        if code < 0:
            return 0  # a character no phrase has: no state goes on with it
        base, keys = self._base, self._keys
        while True:
            lo, hi = base[state], base[state + 1]
            if lo != hi:
                i = bisect_left(keys, code, lo, hi)
                if i < hi and keys[i] == code:
                    return i + 1  # (breadth-first numbering: see the module's docstring)
            if not state:
                return 0
            state = self._fail[state]

    def term(self, state: int) -> int:
        """The id of the pattern that ends exactly at ``state``; -1 if none does."""
        word, bit = self._ends[state >> 6], 1 << (state & 63)
        if not word & bit:
            return -1
        return self._ids[self._ranks[state >> 6] + (word & (bit - 1)).bit_count()]

    def _chains(self, out: array[int]) -> tuple[array[int], array[int]]:
        """Per state, the first pattern-ending state of its output chain (itself if it ends
        a pattern, else its nearest such proper suffix), as that state's place among the
        pattern-ending states + 1 (0: none); per pattern-ending state, the next one's."""
        ends, ranks = self._ends, self._ranks
        place = array("I", bytes(4 * len(out)))  # place + 1 of each pattern-ending state
        first = array("I", bytes(4 * len(out)))
        nxt = array("I", bytes(4 * len(self._ids)))
        for s in range(len(out)):
            word = ends[s >> 6]
            if word >> (s & 63) & 1:
                k = ranks[s >> 6] + (word & ((1 << (s & 63)) - 1)).bit_count()
                place[s] = first[s] = k + 1
                nxt[k] = place[out[s]]  # (a suffix is shallower: numbered, and placed, before)
            else:
                first[s] = place[out[s]]
        return first, nxt

    def outputs(self, state: int) -> Sequence[int]:
        """Ids of the patterns that end at ``state`` (most keystrokes: none, so no generator)."""
        k = self._first[state]
        if not k:
            return ()
        ids, nxt = self._ids, self._next
        found = []
        while k:
            found.append(ids[k - 1])
            k = nxt[k - 1]
        return found

    def phrases(self) -> Iterator[tuple[str, int]]:
        """Every pattern with its id, read back from the trie (so they need not be kept)."""
        base, keys, term = self._base, self._keys, self.term
        stack = [(0, "")]
        while stack:
            node, text = stack.pop()
            if (pid := term(node)) >= 0:
                yield text, pid
            for i in range(base[node], base[node + 1]):
                stack.append((i + 1, text + self._chars[keys[i]]))

    def nbytes(self) -> int:
        arrays = (self._base, self._keys, self._fail, self._ends, self._ranks, self._ids,
                  self._first, self._next, self.lengths)  # fmt: skip
        return sum(a.itemsize * len(a) for a in arrays)


def _sparse(terms: Iterable[int]) -> tuple[array[int], array[int], array[int]]:
    """Per-state pattern ids (-1: none) as (bitmap of the states that have one, 64 to a
    word; how many such states precede each word; their ids in state order)."""
    ends, ranks, ids = array("Q"), array("I"), array("I")
    word = 0
    for s, pid in enumerate(terms):
        if s & 63 == 0 and s:
            ends.append(word)
            word = 0
        if s & 63 == 0:
            ranks.append(len(ids))
        if pid >= 0:
            word |= 1 << (s & 63)
            ids.append(pid)
    ends.append(word)
    return ends, ranks, ids
