"""The keystroke automaton (rules/automaton.py): every occurrence of every phrase, found a
character at a time, and its memory per state (the shipped lists make about 480,000)."""

from __future__ import annotations

import random

import pytest

from rules.automaton import Automaton

pytestmark = pytest.mark.unit


def _found(auto: Automaton, text: str) -> set[tuple[int, int]]:
    """(end offset, pattern id) of every match, stepping one character at a time."""
    state, out = 0, set()
    for i, ch in enumerate(text):
        state = auto.step(state, ord(ch))
        out.update((i + 1, pid) for pid in auto.outputs(state))
    return out


def _agrees_with_a_plain_search(patterns: list[str], text: str) -> Automaton:
    """The automaton of ``patterns`` keeps each with its id and finds every occurrence in
    ``text`` that str.startswith finds; returned for further checks."""
    auto = Automaton(patterns)
    assert sorted(auto.phrases(), key=lambda x: x[1]) == [(p, i) for i, p in
                                                          enumerate(patterns)]  # fmt: skip
    want = {(i + len(p), pid) for pid, p in enumerate(patterns)
            for i in range(len(text)) if text.startswith(p, i)}  # fmt: skip
    assert _found(auto, text) == want
    return auto


def test_every_occurrence_is_found_as_a_plain_search_finds_it() -> None:
    rng = random.Random(14)
    for _ in range(30):
        patterns = sorted({"".join(rng.choices("abc ", k=rng.randint(1, 6))) for _ in range(40)})
        patterns = [p for p in patterns if p.strip()]
        _agrees_with_a_plain_search(patterns, "".join(rng.choices("abcd ", k=300)))


def test_a_state_costs_13_bytes_and_a_pattern_8_more() -> None:
    """base 4, key 1, fail 4, its first output 4, and a bit (plus a running count per 64) for
    whether a pattern ends there: a transition's target is implied by the breadth-first
    numbering (21 bytes a state when it was stored), and only the states that end a pattern
    keep its id and their next output (17 bytes a state when every state had both)."""
    rng = random.Random(7)
    patterns = sorted({"".join(rng.choices("abcdefghij", k=rng.randint(3, 12)))
                       for _ in range(2000)})  # fmt: skip
    auto = Automaton(patterns)
    assert len(auto) > 4 * len(patterns)  # most states end no pattern, as in the lists
    per_state = 13 + 1 / 8 + 4 / 64
    assert auto.nbytes() - len(patterns) <= per_state * len(auto) + 8 * len(patterns) + 16


def test_which_pattern_ends_where_holds_over_many_words_of_the_bitmap() -> None:
    rng = random.Random(3)
    patterns = sorted({"".join(rng.choices("abcdef", k=rng.randint(1, 9))) for _ in range(600)})
    assert len(_agrees_with_a_plain_search(patterns, "".join(rng.choices("abcdefg", k=2000)))
               ) > 20 * 64  # fmt: skip
