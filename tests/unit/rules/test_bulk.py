"""The bulk path (``match_text``: C automaton, then checks at the candidates only) against
the keystroke ``Stream`` on texts built from listed terms, evasions and filler, with the
shipped lists and with 50,000 generated terms."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.compile import Compiled
from rules.match import HISTORY, _capped, _context, match_text
from tests.unit.rules.conftest import same_alerts, streamed

pytestmark = pytest.mark.unit
PROPERTY = settings(derandomize=True, deadline=None, max_examples=200,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])  # fmt: skip

FILLER = ["the", "a", "I", "as", "class", "Scunthorpe", "good", "to", "see", "you", "at",
          "school", "homework", "made", "take", "home", "it's", "don't", "x", "ok"]  # fmt: skip
SEPS = [" ", " ", " ", "  ", ", ", ". ", ".", "", "\n", "_", "-", " - ", "'", "\u200b", "!!"]
LEET = str.maketrans("aeiost", "431057")
LOOKALIKE = str.maketrans("aeopcx", "\u0430\u0435\u043e\u0440\u0441\u0445")  # Cyrillic


def _evade(draw: st.DrawFn, term: str) -> str:
    """One evasion trick (or none) applied to a term, as a pupil might type it."""
    trick = draw(st.integers(0, 9))
    if trick == 1:
        return draw(st.sampled_from([".", " ", "_", ". "])).join(term)  # k.i.l.l
    if trick == 2 and term:  # kiiiill, or a doubled letter (not stretching)
        k = draw(st.integers(0, len(term) - 1))
        return term[:k] + term[k] * draw(st.integers(1, 4)) + term[k:]
    if trick == 3:
        return term.translate(LEET)
    if trick == 4:
        return term.translate(LOOKALIKE)
    if trick == 5:
        return "\u200b".join(term)
    if trick == 6:
        return term.upper()
    if trick == 7:  # fullwidth forms, an accent, a ligature, an apostrophe
        return term.replace("k", "\uff4b").replace("e", "\u00e9").replace("fi", "\ufb01") + "'"
    return term


def texts(terms: list[str]) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        n = draw(st.integers(1, 30))
        out = []
        for _ in range(n):
            kind = draw(st.integers(0, 2))
            word = draw(st.sampled_from(terms)) if kind else draw(st.sampled_from(FILLER))
            out.append(_evade(draw, word) + draw(st.sampled_from(SEPS)))
        return "".join(out)

    return build()


@PROPERTY
@given(data=st.data())
def test_bulk_equals_stream_shipped(ks2: Compiled, shipped_terms: list[str],
                                    data: st.DataObject) -> None:  # fmt: skip
    text = data.draw(texts(shipped_terms))
    assert same_alerts(match_text(ks2, text), streamed(ks2, text))


@PROPERTY
@given(data=st.data())
def test_bulk_equals_stream_exempt(ks2_exempt: Compiled, shipped_terms: list[str],
                                   data: st.DataObject) -> None:  # fmt: skip
    text = data.draw(texts(shipped_terms))
    assert same_alerts(match_text(ks2_exempt, text), streamed(ks2_exempt, text))


@PROPERTY
@given(data=st.data())
def test_bulk_equals_stream_50k_terms(ks2_50k: Compiled, big_terms: list[str],
                                      data: st.DataObject) -> None:  # fmt: skip
    text = data.draw(texts(big_terms))
    assert same_alerts(match_text(ks2_50k, text), streamed(ks2_50k, text))


@settings(PROPERTY, max_examples=25)
@given(data=st.data())
def test_bulk_equals_stream_past_the_history(ks2_50k: Compiled, big_terms: list[str],
                                             data: st.DataObject) -> None:  # fmt: skip
    # Longer than the stream's bounded history: raw text and context are trimmed there.
    text = data.draw(texts(big_terms))
    text *= 2 * HISTORY // max(1, len(text)) + 1
    assert len(text) > 2 * HISTORY
    assert same_alerts(match_text(ks2_50k, text), streamed(ks2_50k, text))


@pytest.mark.parametrize("text", [
    "ok so k\u200bi.l.l   mysel\u0444 no: k1ll myself",
    "I k i l l myself",
    "a b c kill myself a b",
    "don't   tell your parents ,,, it's our l1ttle s3cret!!",
    "\u00bd stra\u00dfe \ufb01ne kiiiill myself",
    "KILL\u00a0MYSELF",
    # past the bounded history: a hit settled long after it ended (the stream had
    # forgotten its context by then), and hits near the cuts
    "word " * 300 + "kill myself" + "\u200b" * 700 + " and on",
    "kill myself " + "x" * 1020 + " kill myself",
    "ab " * 170 + "kill myself " * 60,
    "as ass asss class",
    " ",
    "",
])  # fmt: skip
def test_bulk_equals_stream_cases(ks2: Compiled, text: str) -> None:
    assert same_alerts(match_text(ks2, text), streamed(ks2, text))


@PROPERTY
@given(st.lists(st.sampled_from(["ab", "x" * 30, " ", "  ", "\n", "word", "\u3000", "y" * 130]),
                max_size=120).map("".join), st.integers(0, 2000))  # fmt: skip
def test_context_from_a_short_tail_equals_the_long_one(ks2: Compiled, text: str, hi: int) -> None:
    hi = min(hi, len(text))
    full = _capped(ks2, text[max(0, hi - 4 * ks2.policy.context_chars) : hi])
    assert _context(ks2, lambda lo: text[lo:hi], hi) == full
