"""The keystroke detector: tokens in, capped KeywordDetection events out."""

from __future__ import annotations

import pytest

from agent.detector import (
    BACKSPACE,
    ENTER,
    RESET,
    KeystrokeDetector,
    WindowInfo,
    alert_event,
    severity_of,
)
from agent.policy import ActivePolicy
from rules.compile import Compiled
from rules.load import load_policy
from rules.match import Alert

pytestmark = pytest.mark.unit

NOTES = WindowInfo("xterm", "notes", False, 1)
PROMPT = WindowInfo("pinentry", "Passphrase", True, 2)


@pytest.fixture(scope="module")
def active() -> ActivePolicy:
    return ActivePolicy(0, load_policy())


def run(active: ActivePolicy, *steps: object) -> list[tuple[Alert, WindowInfo]]:
    out: list[tuple[Alert, WindowInfo]] = []
    det = KeystrokeDetector(lambda: active.compiled("ks2"), lambda a, w: out.append((a, w)))
    for step in steps:
        if isinstance(step, WindowInfo):
            det.focus(step)
        else:
            for token in [step] if step in (BACKSPACE, ENTER, RESET) else str(step):
                det.key(token)
    det.settle()
    return out


def test_evasions_alert_and_innocent_text_does_not(active: ActivePolicy) -> None:
    assert run(active, NOTES, "I live in Scunthorpe near Middlesex", ENTER) == []
    [(alert, window)] = run(active, NOTES, "this is 0ur l1ttle s3cret", ENTER)
    assert alert.category == "grooming" and window == NOTES


def test_backspace_before_the_word_ends_takes_the_term_back(active: ActivePolicy) -> None:
    steps: list[object] = [NOTES, "i will kill"]
    steps += [BACKSPACE] * 4 + ["hug you", ENTER]
    assert run(active, *steps) == []
    fixed: list[object] = [NOTES, "i will kilx", BACKSPACE, "l you", ENTER]
    assert [a.context for a, _ in run(active, *fixed)] == ["i will kill you"]


def test_focus_change_settles_the_text_under_the_old_window(active: ActivePolicy) -> None:
    other = WindowInfo("firefox", "homework", False, 3)
    [(alert, window)] = run(active, NOTES, "i will kill you", other, "and more", ENTER)
    assert window == NOTES and alert.context == "i will kill you"


def test_keys_into_a_password_prompt_are_never_matched(active: ActivePolicy) -> None:
    assert run(active, PROMPT, "i will kill you", ENTER) == []


def test_a_new_policy_applies_from_the_next_key(active: ActivePolicy) -> None:
    out: list[Alert] = []
    current: list[Compiled | None] = [active.compiled("ks2")]
    det = KeystrokeDetector(lambda: current[0], lambda a, _w: out.append(a))
    for ch in "i will kill you":
        det.key(ch)
    current[0] = None  # e.g. the profile lost keyboard capture: nothing more is matched
    det.key(" ")  # the old text is settled under the old matcher first
    for ch in "i will kill you again":
        det.key(ch)
    det.settle()
    assert [a.context for a in out] == ["i will kill you"]


def test_a_new_policy_lets_the_old_matcher_go_at_the_next_tick(active: ActivePolicy) -> None:
    import gc
    import weakref

    out: list[Alert] = []
    current: list[Compiled | None] = [Compiled(active.policy, "ks2")]
    old = weakref.ref(current[0])
    det = KeystrokeDetector(lambda: current[0], lambda a, _w: out.append(a))
    for ch in "i will kill you":
        det.key(ch)
    current[0] = active.compiled("ks2")  # a new policy arrives while the pupil is not typing
    det.tick()  # settles the text under the old matcher, and keeps nothing of it
    gc.collect()
    assert old() is None
    assert [a.context for a in out] == ["i will kill you"]


def test_the_event_carries_only_the_capped_context(active: ActivePolicy) -> None:
    text = "one two three four five six seven eight nine ten i will kill you"
    [(alert, window)] = run(active, NOTES, text, ENTER)
    event = alert_event(alert, window, "pupil1", active.policy)
    k = event.keyword
    assert k.context == "seven eight nine ten i will kill you"  # 8 words shipped
    assert "one" not in event.SerializeToString().decode("latin-1")
    assert (event.account, k.application, k.window_title, k.source) == (
        "pupil1", "xterm", "notes", "keyboard")  # fmt: skip
    assert event.severity == severity_of(active.policy, "violence", alert.score) >= 1


def test_a_window_title_with_control_characters_still_makes_an_honest_event(
    active: ActivePolicy,
) -> None:
    """A pupil can name a window with a bell or a terminal escape; the event must still keep
    the contract the collector checks, or the detection would read as a tampered PC."""
    from protos.event_fields import Vocabulary, flaw

    [(alert, _)] = run(active, NOTES, "i will kill you", ENTER)
    window = WindowInfo("xterm\x07", "\x1b]0;owned\x07" + "t" * 400, False, 1)
    event = alert_event(alert, window, "pupil1", active.policy)
    words = Vocabulary(categories=frozenset(c.name for c in active.policy.categories))
    assert flaw(event, words) is None
    assert event.keyword.window_title.startswith(" ]0;owned ")


def test_a_semantic_event_says_which_part_fired(active: ActivePolicy) -> None:
    """The DSL sees the closest exemplar and whether the vote or its average with the
    trained head raised the alert."""
    from rules.semantic import SemanticAlert

    alert = SemanticAlert("grooming", 0.83, 0.8, "grooming:3", "are you home alone", 0.61,
                          0, 20, "r u home on ur own", part="average")  # fmt: skip
    k = alert_event(alert, NOTES, "pupil1", active.policy).keyword
    assert (k.list, k.exemplar, k.semantic_part) == ("semantic/grooming", "grooming:3", "average")
    assert list(k.terms) == ["are you home alone"] and round(k.similarity, 2) == 0.61


def test_letting_go_settles_the_text_and_holds_the_matcher_no_more(active: ActivePolicy) -> None:
    """Before a new matcher is read in, the detector reports what was typed under the old
    one and keeps no reference to it (its stream included), so its space can be reused."""
    import gc
    import weakref

    out: list[Alert] = []
    tables = active.compiled("ks2").tables()
    compiled: list[Compiled | None] = [Compiled(active.policy, "ks2", None, None,
                                                lambda *_: tables)]  # (its own object)
    det = KeystrokeDetector(lambda: compiled[0], lambda a, w: out.append(a))
    det.focus(NOTES)
    for ch in "this is 0ur l1ttle s3cret":
        det.key(ch)
    old = weakref.ref(compiled.pop())
    compiled.append(None)
    det.let_go()
    gc.collect()
    assert [a.category for a in out] == ["grooming"] and old() is None
