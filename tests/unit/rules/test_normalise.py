"""Each evasion trick, and the map back to what was typed."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.normalise import fast_squeeze, fold, normalise

pytestmark = pytest.mark.unit
# Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])  # fmt: skip

CASES = [
    # (trick, typed, squeezed form it must reach)
    ("plain", "kill", "kil"),
    ("case", "KiLL", "kil"),
    ("nfkc fullwidth", "\uff2b\uff49\uff4c\uff4c", "kil"),
    ("cyrillic look-alikes", "\u043a\u0456ll", "kil"),
    ("greek look-alikes", "\u03ba\u03b9ll", "kil"),
    ("diacritics", "kïll", "kil"),
    ("leet digits", "k1ll", "kil"),
    ("leet symbols", "@$$", "as"),
    ("leet phrase", "0ur l1ttl3 s3cr3t", "our litle secret"),
    ("dots", "k.i.l.l", "kil"),
    ("spaces", "k i l l", "kil"),
    ("underscores", "k_i_l_l", "kil"),
    ("mixed separators", "k - i . l _ l", "kil"),
    ("stretched", "kiiiiill", "kil"),
    ("zero-width", "k\u200bi\u200cl\u200dl", "kil"),
    ("soft hyphen", "ki\u00adll", "kil"),
    ("apostrophe", "don't", "dont"),
    ("curly apostrophe", "don\u2019t", "dont"),
    ("words stay words", "i will kill you", "i wil kil you"),
    ("single letter word", "a cat", "a cat"),
    ("repeated spaces", "kill   you", "kil you"),
]


@pytest.mark.parametrize(("trick", "typed", "want"), CASES, ids=[c[0] for c in CASES])
def test_each_trick_reaches_the_plain_form(trick: str, typed: str, want: str) -> None:
    assert normalise(typed).text().strip() == want


def test_stretched_letters_keep_run_lengths() -> None:
    n = normalise("kiiiill")
    assert n.text() == "kil"
    assert n.runs == [1, 4, 2]


def test_collapsed_letters_are_soft_boundaries() -> None:
    n = normalise("I k i l l")
    assert n.text() == "ikil"
    assert n.soft == [False, True, True, True]


def test_spans_point_at_what_was_typed() -> None:
    typed = "say k\u200b1\u200bll now"
    n = normalise(typed)
    i = n.text().index("kil")
    assert typed[n.starts[i] : n.ends[i + 2]] == "k\u200b1\u200bll"


def test_fold_maps_separators_to_one_space() -> None:
    assert fold("a,b") == "a b"


ALPHABET = "ab kKl1!. _-'\u200bß\u00e9ÿ\u0430\uff4b0@$"


@PROPERTY
@given(st.text(alphabet=ALPHABET, max_size=30))
def test_fast_path_equals_stream(text: str) -> None:
    squeezed, unsqueezed, collapsed = fast_squeeze(text)
    assert squeezed.count(" ") == unsqueezed.count(" ")
    n = normalise(text)
    assert squeezed == n.text()
    assert collapsed or not any(n.soft)


@PROPERTY
@given(st.text(max_size=40))
def test_any_unicode_normalises_without_error(text: str) -> None:
    n = normalise(text)
    assert len(n.chars) == len(n.runs) == len(n.starts) == len(n.ends)
    assert all(0 <= s < e <= len(text) for s, e in zip(n.starts, n.ends, strict=True))
