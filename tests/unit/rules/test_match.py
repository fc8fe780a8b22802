"""The matcher on the shipped lists: each category, innocent texts, exemptions, privacy,
and streaming with Backspace against matching the final text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.compile import Compiled
from rules.match import Alert, Stream, match_text

pytestmark = pytest.mark.unit
# Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])  # fmt: skip

CATEGORY_CASES = [
    ("extremism", "they want a race war now"),
    ("grooming", "this is 0ur l1ttle s3cret ok"),
    ("grooming", "please don't tell your parents"),
    ("self_harm", "i cut myself again last night"),
    ("suicide", "i want to k.i.l.l myself"),
    ("suicide", "sometimes i want to die"),
    ("bullying", "everyone hates you, nobody likes you"),
    ("discrimination", "go back to your country"),
    ("drugs", "anyone know where to buy weed"),
    ("pornography", "watch p0rn here"),
    ("violence", "im gonna staaab him after school"),
    ("bullying", "i will kiiiill you"),
    ("gambling", "try the online casino free spins"),
    ("illegal", "where do i get a fake id and a stolen card"),
]


def categories(compiled: Compiled, text: str) -> set[str]:
    return {a.category for a in match_text(compiled, text) if not a.suppressed}


@pytest.mark.parametrize(("category", "text"), CATEGORY_CASES)
def test_each_category_alerts(ks2: Compiled, category: str, text: str) -> None:
    assert category in categories(ks2, text)


INNOCENT = [
    "We visited Scunthorpe and then drove to Middlesex and Essex.",
    "The therapist said the class went well.",
    "Assassin's Creed is a game; the bass was loud in class.",
    "I passed the grass and the glass.",
    "As I said, the skills we learn matter.",
    "Good morning, we will bake a cake.",
    "My cat has a mat.",
    "The cocktail party was in Sussex.",
]


@pytest.mark.parametrize("text", INNOCENT)
def test_innocent_text_does_not_alert(ks2: Compiled, text: str) -> None:
    assert match_text(ks2, text) == []


def test_double_letters_are_not_stretching(ks2: Compiled) -> None:
    # "as" must not reach the list's "ass", while a stretched "asssss" does.
    assert not any("ass" in a.terms for a in Stream(ks2).feed_text("as "))
    stream = Stream(ks2)
    stream.feed_text("asssss ")
    assert stream._score._windows  # the weak term was seen and is waiting in its window


def test_context_is_capped_in_words_and_characters(ks2: Compiled) -> None:
    filler = " ".join(f"word{i}" for i in range(40))
    alerts = match_text(ks2, filler + " i want to kill myself and more after")
    (alert,) = alerts
    assert alert.context.endswith("kill myself")
    assert len(alert.context.split()) <= 8
    assert len(alert.context) <= 120
    assert "word0" not in alert.context
    long_word = "x" * 300
    (alert,) = match_text(ks2, long_word + " kill myself")
    assert len(alert.context) <= 120


def test_alert_span_is_the_original_text(ks2: Compiled) -> None:
    text = "ok so k\u200bi.l.l   mysel\u0444 no: k1ll myself"
    (alert,) = match_text(ks2, text)
    assert text[alert.start : alert.end] == "k1ll myself"


def test_combination_within_window(ks2: Compiled) -> None:
    assert "violence" in categories(ks2, "dont bring that knife to school tomorrow")
    far = "bring " + "word " * 20 + "knife " + "word " * 20 + "school"
    assert "violence" not in categories(ks2, far)



def test_streaming_reports_at_the_boundary(ks2: Compiled) -> None:
    stream = Stream(ks2)
    assert stream.feed_text("i want to kill mysel") == []
    assert stream.feed("f") == []  # "myselfish" could follow
    # Suicide has guards (a lesson, a book) that may still follow in the sentence, so its
    # alert waits until the sentence is over: here, when the next one begins.
    assert stream.feed_text(" tonight. ") == []
    (alert,) = stream.feed("I")
    assert alert.category == "suicide"


def test_backspace_corrects_a_typo(ks2: Compiled) -> None:
    stream = Stream(ks2)
    stream.feed_text("kill mysx")
    stream.backspace()
    out = stream.feed_text("elf") + stream.reset()
    assert [a.category for a in out] == ["suicide"]


def test_typed_then_erased_is_still_reported_once(ks2: Compiled) -> None:
    stream = Stream(ks2)
    first = stream.feed_text("kill myself ")  # waits for its sentence (suicide has guards)
    for _ in range(3):
        first += stream.backspace()  # erased while waiting: settled and reported now
    assert stream.standing == ()
    again = stream.feed_text("lf ") + stream.finish()
    assert len(first) == 1 and again == []  # reported, not repeated
    assert [a.category for a in stream.standing] == ["suicide"]


def test_delete_and_reset(ks2: Compiled) -> None:
    stream = Stream(ks2)
    stream.feed_text("kill mysel")
    stream.delete()
    assert stream.reset() == []  # "mysel" is not "myself"
    assert stream.feed_text("kill myself") == [] and len(stream.reset()) == 1


WORDS = ["kill", "myself", "our", "little", "secret", "k", "i", "l", "kys", "send", "nudes",
         "class", "ass", "a", "s", "want", "to", "die", "don't", "tell", "p0rn", "1", "0"]
JUNK = st.text(alphabet="kil sx.0e", min_size=1, max_size=4)


@st.composite
def typing(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A final text and a keystroke script that reaches it with erased detours."""
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=10))
    seps = draw(st.lists(st.sampled_from([" ", ".", "", "  ", "_"]), min_size=len(words),
                         max_size=len(words)))  # fmt: skip
    final = "".join(w + s for w, s in zip(words, seps, strict=True))
    script: list[tuple[str, str]] = []
    for ch in final:
        if draw(st.integers(0, 4)) == 0:
            junk = draw(JUNK)
            script += [("feed", j) for j in junk] + [("bs", "")] * len(junk)
        script.append(("feed", ch))
    return final, script


@PROPERTY
@given(typing())
def test_streaming_with_backspaces_equals_final_text(
    ks2: Compiled, case: tuple[str, list[tuple[str, str]]]
) -> None:
    final, script = case
    stream = Stream(ks2)
    reported: list[Alert] = []
    for op, ch in script:
        if op == "feed":
            reported += stream.feed(ch)
        else:
            reported += stream.backspace()
    reported += stream.finish()
    expected = match_text(ks2, final)
    assert sorted(stream.standing, key=repr) == sorted(expected, key=repr)
    assert all(a in reported for a in expected)


@PROPERTY
@given(st.text(alphabet="kilmyseft 0.1_ao'\u200b", max_size=40))
def test_bulk_equals_streaming(ks2: Compiled, text: str) -> None:
    stream = Stream(ks2)
    out = stream.feed_text(text) + stream.finish()
    assert sorted(match_text(ks2, text), key=repr) == sorted(stream.standing, key=repr)
    assert sorted(stream.standing, key=repr) == sorted(out, key=repr)
