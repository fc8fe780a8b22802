"""The pattern language: word classes, inflections, optional words, alternatives, gaps and
guards; compiled into the streaming matcher, the keystroke path and the bulk path agreeing.

The policy here is written in the test (not the shipped lists) so each rule is exercised
on purpose."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.compile import Compiled
from rules.load import DEFAULT_DIR, load_files, read_folder
from rules.match import Alert, Stream, match_short, match_text
from rules.normalise import normalise
from rules.pattern import expand, inflect
from rules.schema import PolicyError

pytestmark = pytest.mark.unit
PROPERTY = settings(derandomize=True, deadline=None, max_examples=300,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])  # fmt: skip

CLASSES = """
[[class]]
name = "photo"
words = ["pic~s", "pix", "selfie~s", "photo~s"]
why = "images"

[[class]]
name = "you"
words = ["you", "u", "ya"]
why = "you"

[[class]]
name = "game"
words = ["fortnite", "minecraft", "the match"]
why = "games"
"""
GROOMING = """
[category]
name = "grooming"
threshold = 10
window = 12

[[term]]
pattern = "send [me] [a|some] {photo}"
weight = 10
why = "asks for images"
example = "can u send me a pic"

[[term]]
pattern = "send me ...3 {photo} of {you}"
weight = 4
why = "a bounded gap: the request with words in between (adds to the one above)"
example = "send me a really nice pic of you"

[[term]]
pattern = "(are|r) {you} alone"
weight = 6
why = "checking for supervision"
example = "r u alone"
"""
VIOLENCE = """
[category]
name = "violence"
threshold = 10
window = 12

[[term]]
pattern = "kill~ {you}"
weight = 10
why = "a threat"
example = "im killing you"

[[term]]
pattern = "stab~ {you}"
weight = 20
why = "a strong threat: survives the lesson guard, not the game guard"
example = "ill stab you"
"""
GUARDS = """
[[guard]]
pattern = "(at|in) {game}"
categories = ["violence"]
weight = -100
within = 6
why = "play"
example = "at fortnite"

[[guard]]
pattern = "in the lesson"
categories = ["violence"]
weight = -10
within = 6
why = "a lesson"
example = "in the lesson"
"""


def _policy_files() -> dict[str, str]:
    files = {k: v for k, v in read_folder(DEFAULT_DIR).items()
             if not k.startswith(("keywords/", "classes", "guards", "semantic",
                                  "screenshots"))}  # fmt: skip
    files["classes.toml"] = CLASSES
    files["guards.toml"] = GUARDS
    files["keywords/grooming.toml"] = GROOMING
    files["keywords/violence.toml"] = VIOLENCE
    files["profiles.toml"] = (
        '[[profile]]\nname = "ks2"\nsensors = ["keyboard"]\n'
        'categories = ["grooming", "violence"]\nurl_categories = []\n'
    )
    files["incidents.toml"] = "[incidents]\ngroup_window_minutes = 30\nsilent_agent_minutes = 60\n"
    files["exemptions.toml"] = ""
    files["urls.toml"] = ""
    return files


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return Compiled(load_files(_policy_files()), "ks2")


def _cats(c: Compiled, text: str) -> list[str]:
    return [a.category for a in match_text(c, text)]


def _streamed(c: Compiled, text: str) -> list[Alert]:
    stream = Stream(c)
    stream.feed_text(text)
    stream.finish()
    return list(stream.standing)


def _key(a: Alert) -> tuple[object, ...]:
    return (a.start, a.end, a.category, a.terms, a.score, a.suppressed, a.context)


# -- expansion ------------------------------------------------------------------------------
def test_expansion_of_classes_optional_words_and_alternatives() -> None:
    classes = {"photo": ("pic~s", "selfie")}
    (seg,), gaps = expand("send [me] {photo}", classes).segments, expand("x", {}).gaps
    assert set(seg) == {"send pic", "send pics", "send selfie", "send me pic",
                        "send me pics", "send me selfie"}  # fmt: skip
    assert gaps == ()
    assert set(expand("(are|r) (you|u)", {}).segments[0]) == {"are you", "are u", "r you", "r u"}


def test_inflections() -> None:
    assert inflect("kill") == ("kill", "kills", "killed", "killing")
    assert set(inflect("stab")) >= {"stabbed", "stabbing", "stabed"}
    assert inflect("batter") == ("batter", "batters", "battered", "battering")
    assert inflect("bully") == ("bully", "bullies", "bullied", "bullying")
    assert inflect("punch") == ("punch", "punches", "punched", "punching")
    assert inflect("hate") == ("hate", "hates", "hated", "hating")
    assert inflect("pic", plural_only=True) == ("pic", "pics")


def test_gaps_split_a_pattern_into_segments() -> None:
    found = expand("send me ...3 {photo} ... now", {"photo": ("pic",)})
    assert found.segments == (("send me",), ("pic",), ("now",))
    assert found.gaps == (3, 3)


def test_a_large_product_is_stored_in_adjacent_pieces() -> None:
    # 8 x 8 x 8 phrases as one segment would be 512 phrases; in pieces it is 64 + 8.
    words = {"a": tuple(f"a{i}" for i in range(8)), "b": tuple(f"b{i}" for i in range(8)),
             "c": tuple(f"c{i}" for i in range(8))}  # fmt: skip
    whole = expand("{a} [xy] {b} {c}", words)
    assert whole.gaps == () and len(whole.segments[0]) == 1024
    split = expand("{a} [xy] {b} {c}", words, split=True)
    assert split.gaps == (0, 0)
    assert [len(s) for s in split.segments] == [16, 8, 8]  # "a0", "a0 xy", ...; the b; the c
    # the pieces together spell exactly the phrases of the whole
    glued = {f"{p} {q} {r}" for p in split.segments[0] for q in split.segments[1]
             for r in split.segments[2]}  # fmt: skip
    assert glued == set(whole.segments[0])
    # a trailing optional word joins the piece before it: no piece can match nothing
    tail = expand("{a} {b} {c} [now|then]", words, split=True)
    assert all(all(p for p in seg) for seg in tail.segments)
    assert all(p.endswith(("now", "then")) or p.startswith("c") for p in tail.segments[-1])


def test_large_terms_and_guards_in_pieces_match_as_whole_ones() -> None:
    files = _policy_files()
    many = [f"w{i}" for i in range(15)]
    files["classes.toml"] += f'[[class]]\nname = "many"\nwords = {many!r}\nwhy = "x"\n'
    files["keywords/violence.toml"] += (
        '\n[[term]]\npattern = "(big|huge) {many} threat {many} now"\nweight = 10\n'
        'why = "450 phrases"\nexample = "huge w3 threat w14 now"\n'
    )
    files["guards.toml"] += (
        '\n[[guard]]\npattern = "{many} (in|at) {many} drill"\ncategories = ["violence"]\n'
        'weight = -100\nwithin = 6\nwhy = "450 phrases"\nexample = "w1 at w2 drill"\n'
    )
    c = Compiled(load_files(files), "ks2")
    assert any(r.guard >= 0 for r in c.sequences)  # the guard went in pieces
    assert _cats(c, "ok huge w3 threat w14 now") == ["violence"]
    assert _cats(c, "ok huge w3 threat w14") == []
    assert _cats(c, "huge w3 threat w14 now in the w1 at w2 drill") == []
    for text in ("huge w3 threat w14 now", "huge w3 threat w14 now w1 at w2 drill"):
        assert [_key(a) for a in match_text(c, text)] == [_key(a) for a in _streamed(c, text)]


def test_boundary_from_stars() -> None:
    assert expand("*phobic", {}).boundary == "end"
    assert expand("thinspo*", {}).boundary == "start"
    assert expand("*x*", {}).boundary == "none"


@pytest.mark.parametrize(("pattern", "fault"), [
    ("send [me", "is not closed"),
    ("{nope} x", "unknown word class {nope}"),
    ("a ...", "cannot end with a gap"),
    ("a ...99 b", "a gap is 0 to 20 words"),
    ("[a ... b]", "only allowed between words at the top level"),
    ("[a] ... b", "can match nothing"),
    ("x~~", "~ must follow a plain word"),
    ("{loop}", "refers to itself"),
    ("(a|b|c|d|e|f|g|h|i|j) " * 4, "expands to more than"),
    ("join the recruiters?", "'\\?' does not make a word optional"),  # a regex habit
    ("a (big|small)? thing", "'\\?' does not make a word optional"),
    ("wh?t now", "'\\?' does not make a word optional"),
])  # fmt: skip
def test_pattern_faults(pattern: str, fault: str) -> None:
    with pytest.raises(PolicyError, match=fault):
        expand(pattern, {"loop": ("a {loop}",)})


def test_a_fault_names_file_and_line() -> None:
    files = _policy_files()
    files["keywords/grooming.toml"] = GROOMING.replace("(are|r) {you}", "(are|r {you}")
    with pytest.raises(PolicyError, match=r"keywords/grooming.toml:\d+: pattern .*not closed"):
        load_files(files)
    files = _policy_files()
    files["classes.toml"] = CLASSES.replace('"pix"', '"{pixels}"')
    with pytest.raises(PolicyError, match=r"classes.toml:\d+: .*unknown word class {pixels}"):
        load_files(files)
    files = _policy_files()
    files["guards.toml"] = GUARDS.replace("weight = -100", "weight = 5")
    with pytest.raises(PolicyError, match=r"guards.toml:\d+: a guard's weight must be negative"):
        load_files(files)


def test_a_guard_for_every_category() -> None:
    files = _policy_files()
    files["guards.toml"] = GUARDS.replace('categories = ["violence"]\nweight = -10',
                                          'categories = ["*"]\nweight = -10')
    (_, lesson) = load_files(files).guards
    assert set(lesson.categories) == {"grooming", "violence"}


# -- matching -------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "send me a pic", "can u send pics", "send selfies pls", "send me some photos", "snd me a p1c",
])  # fmt: skip
def test_one_entry_catches_many_wordings(compiled: Compiled, text: str) -> None:
    assert _cats(compiled, text.replace("snd", "send")) == ["grooming"]


def test_inflected_forms_and_classes(compiled: Compiled) -> None:
    for text in ("im gonna kill u", "killing ya", "he killed you", "kills you"):
        assert _cats(compiled, text) == ["violence"], text


def test_a_gap_allows_up_to_n_words_in_order(compiled: Compiled) -> None:
    low = "r u alone"  # 6: a sequence must add 4 to alert
    assert _cats(compiled, f"{low} send me a pic of you") == ["grooming"]  # the term alone
    assert _cats(compiled, f"{low} send me that nice new pic of u") == ["grooming"]
    assert _cats(compiled, f"{low} send me one two three four pic of u") == []  # gap of 4
    assert _cats(compiled, f"{low} pic of you send me") == []  # the wrong order


def test_a_phrase_may_follow_itself_in_a_sequence() -> None:
    files = _policy_files()
    files["keywords/violence.toml"] = VIOLENCE + """
[[term]]
pattern = "again ...2 again"
weight = 10
why = "a phrase in two segments"
example = "again and again"
"""
    compiled = Compiled(load_files(files), "ks2")
    assert _cats(compiled, "again and again") == ["violence"]
    assert _cats(compiled, "again") == []


def test_the_same_entry_over_the_same_words_counts_once(compiled: Compiled) -> None:
    # "send pic" and "send me a pic" are alternatives of one entry; on "send me a pic"
    # only one of them can match, but "r u alone r u alone" is two separate hits.
    (alert,) = match_text(compiled, "r u alone r u alone")
    assert alert.score == 12


def test_a_guard_cancels_in_its_sentence_only(compiled: Compiled) -> None:
    assert _cats(compiled, "ill kill you at fortnite") == []
    assert _cats(compiled, "at fortnite ill kill you") == []
    assert _cats(compiled, "ill kill you. at fortnite later?") == ["violence"]
    assert _cats(compiled, "ill kill you when i see you tomorrow after school at fortnite") \
        == ["violence"]  # more than 6 words away


def test_a_guard_lowers_and_strong_terms_survive(compiled: Compiled) -> None:
    assert _cats(compiled, "in the lesson he said kill you") == []
    assert _cats(compiled, "in the lesson he said stab you") == ["violence"]  # 20 - 10


def test_emoji_read_as_their_words() -> None:
    assert normalise("need a 🔌 now").text() == normalise("need a plug now").text()
    assert normalise("🔪").text().strip() == "knife"


# -- streaming: guarded alerts wait for their sentence -------------------------------------
def test_a_guarded_alert_waits_for_the_end_of_its_sentence(compiled: Compiled) -> None:
    stream = Stream(compiled)
    assert stream.feed_text("ill kill you ") == []
    assert stream.feed_text("at fortnite. ") == []
    assert stream.feed_text("ok") == [] and stream.finish() == []
    stream = Stream(compiled)
    assert stream.feed_text("ill kill you. ") == []
    (alert,) = stream.feed_text("ok")  # the next sentence began: no guard can follow
    assert alert.category == "violence"


def test_a_guarded_alert_is_released_after_its_reach(compiled: Compiled) -> None:
    stream = Stream(compiled)
    stream.feed_text("ill kill you")
    out = stream.feed_text(" " + "and then " * 12)
    assert [a.category for a in out] == ["violence"]


def test_a_waiting_alert_that_is_erased_is_still_reported(compiled: Compiled) -> None:
    stream = Stream(compiled)
    stream.feed_text("ill kill you ")
    erased: list[Alert] = []
    for _ in range(len("kill you ")):
        erased += stream.backspace()
    assert [a.category for a in erased] == ["violence"]
    assert stream.feed_text("hug you ") == [] and stream.finish() == []


def test_an_ungarded_category_reports_at_once(compiled: Compiled) -> None:
    stream = Stream(compiled)
    assert stream.feed_text("send me a pi") == []
    assert stream.feed("c") == []
    assert [a.category for a in stream.feed(" ")] == ["grooming"]


WORDS = ["send", "me", "a", "pic", "pics", "of", "you", "u", "r", "are", "alone", "kill",
         "killing", "stab", "at", "fortnite", "in", "the", "lesson", "match", "minecraft",
         "some", "selfie", "ok", "x", "nice"]  # fmt: skip
SEPS = [" ", " ", " ", "  ", ". ", "! ", "\n", ", ", "? ", ".", "-"]


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPS)), max_size=60))
def test_bulk_equals_stream_with_patterns_gaps_and_guards(
        compiled: Compiled, parts: list[tuple[str, str]]) -> None:  # fmt: skip
    text = "".join(w + s for w, s in parts)
    assert sorted(map(_key, match_text(compiled, text))) == sorted(
        map(_key, _streamed(compiled, text)))


def test_profiles_with_the_same_lists_share_one_matcher() -> None:
    from rules.load import load_policy

    policy = load_policy()
    shared: dict[tuple[object, ...], Compiled] = {}
    ks1 = Compiled(policy, "ks1", shared=shared)
    ks2 = Compiled(policy, "ks2", shared=shared)
    staff = Compiled(policy, "staff", shared=shared)
    assert ks1.automaton is ks2.automaton and ks1.bulk is ks2.bulk
    assert staff.automaton is not ks2.automaton
    assert ks2.profile.name == "ks2"
    assert match_text(ks1, "i want to kill myself") == match_text(ks2, "i want to kill myself")


def test_short_texts_match_without_the_bulk_automaton() -> None:
    # The agent matches search queries with match_short: the keystroke path, so the PC never
    # builds the bulk automaton; the alerts are the bulk path's.
    c = Compiled(load_files(_policy_files()), "ks2")
    texts = ["can u send me a pic", "r u alone", "ill stab you at fortnite", "nothing here",
             "ill kill you. in the lesson today"]  # fmt: skip
    short = [[_key(a) for a in match_short(c, t)] for t in texts]
    assert not c.bulk_ready
    assert short == [[_key(a) for a in match_text(c, t)] for t in texts]
    assert c.bulk_ready and any(short)
    assert sorted(c.patterns) == sorted(p for p, _ in c.automaton.phrases())


def test_no_piece_is_cut_beside_a_one_letter_word() -> None:
    # "r u" is typed as "ru" (the gap between one-letter words goes), so pieces cut between
    # "r" and "u" would not match what the whole phrase matches.
    fruit = {"many": ("apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "peach",
                      "pear", "plum", "kiwi", "lime", "fig", "date", "olive")}  # fmt: skip
    assert expand("{many} (r|x) (u|y) {many}", fruit, split=True).gaps == ()
    assert expand("{many} (big|huge) (ok|yes) {many}", fruit, split=True).gaps == (0,)
    files = _policy_files()
    words = list(fruit["many"])
    files["classes.toml"] += f'[[class]]\nname = "many"\nwords = {words!r}\nwhy = "x"\n'
    files["keywords/violence.toml"] += (
        '\n[[term]]\npattern = "{many} (r|x) (u|y) {many}"\nweight = 10\nwhy = "x"\n'
        'example = "apple r u banana"\n'
    )
    c = Compiled(load_files(files), "ks2")
    assert _cats(c, "apple r u banana") == ["violence"]
