"""Time-bounded exemptions and alert de-duplication, on a policy written in the test (the
shipped lists change; these rules must not)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rules.compile import Compiled
from rules.load import DEFAULT_DIR, load_files, read_folder
from rules.match import Stream, match_text

pytestmark = pytest.mark.unit

DURING = datetime(2025, 1, 20, 10, 0, tzinfo=UTC)
AFTER = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)

VIOLENCE = """
[category]
name = "violence"
threshold = 10
window = 12

[[term]]
pattern = "assassinate~"
weight = 6
why = "history lessons use it too"
example = "assassinated"

[[term]]
pattern = "murder~"
weight = 6
why = "weak alone"
example = "murdered"

[[combo]]
all = ["bring~", "knife", "school"]
window = 8
weight = 10
why = "a weapon taken to school"
example = "bring a knife to school"
"""
SUICIDE = """
[category]
name = "suicide"
threshold = 10
window = 12

[[term]]
pattern = "want to die"
weight = 10
why = "ideation"
example = "i want to die"

[[combo]]
all = ["want", "die"]
window = 6
weight = 10
why = "the same words apart"
example = "want so much to die"
"""
EXEMPTIONS = """
[[exemption]]
id = "ks2-history"
group = "ks2"
terms = ["assassinate", "assassinated"]
start = 2025-01-06
end = 2025-02-14
reason = "Year 6 history topic."
approver = "A. Example (DSL)"
"""


def _compiled(now: datetime) -> Compiled:
    files = {k: v for k, v in read_folder(DEFAULT_DIR).items()
             if not k.startswith(("keywords/", "classes", "guards", "semantic",
                                  "screenshots"))}  # fmt: skip
    files.update({
        "classes.toml": "", "guards.toml": "", "urls.toml": "", "exemptions.toml": EXEMPTIONS,
        "incidents.toml": "[incidents]\ngroup_window_minutes = 30\nsilent_agent_minutes = 60\n",
        "keywords/violence.toml": VIOLENCE, "keywords/suicide.toml": SUICIDE,
        "profiles.toml": '[[profile]]\nname = "ks2"\nsensors = ["keyboard"]\n'
                         'categories = ["violence", "suicide"]\nurl_categories = []\n',
    })  # fmt: skip
    return Compiled(load_files(files), "ks2", now)


@pytest.fixture(scope="module")
def during() -> Compiled:
    return _compiled(DURING)


@pytest.fixture(scope="module")
def after() -> Compiled:
    return _compiled(AFTER)


def test_an_exemption_suppresses_and_records_within_its_dates(
    during: Compiled, after: Compiled
) -> None:
    text = "they plan to assassinate the archduke and murder his guard"
    alerts = match_text(during, text)
    assert [a.suppressed for a in alerts] == [True]
    assert alerts[0].exemptions == ("ks2-history",)
    # outside the exemption's dates the same text alerts normally
    assert [(a.category, a.suppressed) for a in match_text(after, text)] == [("violence", False)]


def test_an_exempted_alert_does_not_hide_a_real_one_over_the_same_words(
    during: Compiled,
) -> None:
    # The lesson's exemption suppresses the assassination words, but a knife taken to school
    # in the same sentence is still a concern: the suppressed alert consumes nothing.
    text = "bring assassinate murder murder knife school"
    alerts = match_text(during, text)
    assert [a.suppressed for a in alerts if a.category == "violence"] == [True, False]
    stream = Stream(during)
    streamed = stream.feed_text(text) + stream.reset()
    assert [(a.terms, a.suppressed) for a in streamed] == [(a.terms, a.suppressed) for a in alerts]


def test_words_already_alerted_on_do_not_alert_again(after: Compiled) -> None:
    # "want to die" is a term and "want" + "die" a combination of the same category: the
    # DSL should get one alert for the phrase, not a second for the same words.
    text = "i want to die"
    # Both end on the same word, so they are one alert naming both.
    (alert,) = match_text(after, text)
    assert alert.terms == ("want to die", "want + die")
    stream = Stream(after)
    assert [a.terms for a in stream.feed_text(text) + stream.reset()] == [alert.terms]
    # Said again later, it is a new alert.
    again = match_text(after, "i want to die. tomorrow i still want to die")
    assert [a.terms for a in again] == [alert.terms, alert.terms]
    # The combination alone, later in the sentence, does not re-alert on words already used.
    (first,) = match_text(after, "i want to die so much to die")
    assert first.terms == alert.terms


def test_an_exemption_still_names_phrases_of_patterns_stored_in_pieces() -> None:
    # "(a|b) (c|d) ..." over many words is stored in pieces, and "x ...0 (y|z)" is joined
    # into phrases; an exemption naming one whole phrase must still suppress it.
    fruit = [f"fruit{i}" for i in range(15)]
    files = {k: v for k, v in read_folder(DEFAULT_DIR).items()
             if not k.startswith(("keywords/", "classes", "guards", "semantic",
                                  "screenshots"))}  # fmt: skip
    files.update({
        "classes.toml": f'[[class]]\nname = "many"\nwords = {fruit!r}\nwhy = "x"\n',
        "guards.toml": "", "urls.toml": "",
        "incidents.toml": "[incidents]\ngroup_window_minutes = 30\nsilent_agent_minutes = 60\n",
        "keywords/violence.toml": VIOLENCE + (
            '\n[[term]]\npattern = "{many} (big|huge) (ok|yes) {many}"\nweight = 10\n'
            'why = "pieces"\nexample = "fruit1 big ok fruit2"\n'
            '\n[[term]]\npattern = "zap ...0 (fruit1|fruit2)"\nweight = 10\n'
            'why = "joined"\nexample = "zap fruit1"\n'),
        "keywords/suicide.toml": SUICIDE,
        "exemptions.toml": EXEMPTIONS.replace('terms = ["assassinate", "assassinated"]',
                                              'terms = ["fruit1 big ok fruit2", "zap"]'),
        "profiles.toml": '[[profile]]\nname = "ks2"\nsensors = ["keyboard"]\n'
                         'categories = ["violence", "suicide"]\nurl_categories = []\n',
    })  # fmt: skip
    c = Compiled(load_files(files), "ks2", DURING)
    for text in ("fruit1 big ok fruit2", "zap fruit1"):
        assert [(a.suppressed, a.exemptions) for a in match_text(c, text)] == [
            (True, ("ks2-history",))], text
    assert [a.suppressed for a in match_text(c, "fruit3 big ok fruit2")] == [False]
