"""The entry table (rules/entries.py): what each phrase means, read back as it was given,
in two bytes per index where the indexes fit (the shipped ks2 lists: 128,000 entries)."""

from __future__ import annotations

import pytest

from rules.entries import Entry, EntryTable

pytestmark = pytest.mark.unit


def _table() -> tuple[list[list[Entry]], EntryTable]:
    per_pattern = [[Entry(p % 11, 1 + p % 5, "word", bytes([0, 2]) if p % 3 else b"",
                          f"term {p % 40}", member=p % 7 - 1, seps=1)]
                   for p in range(3000)]  # fmt: skip
    return per_pattern, EntryTable(per_pattern)


def test_every_phrase_means_what_it_was_given() -> None:
    per_pattern, table = _table()
    assert len(table) == len(per_pattern)
    for pid, entries in enumerate(per_pattern):
        assert table[pid] == tuple(entries)


def test_an_entry_costs_two_bytes_a_meaning_index_a_run_index_and_a_member() -> None:
    per_pattern, table = _table()
    n = sum(map(len, per_pattern))
    assert table.nbytes() <= 4 * (len(per_pattern) + 1) + 6 * n + len(per_pattern)
