"""The DPIA pack's texts follow the settings they are written from, and the pupils' notice is
readable at Key Stage 2 (Flesch-Kincaid grade at most 6, collector/privacy/dpia_readability.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent import outbox
from collector.privacy import dpia, dpia_notices, dpia_readability, dpia_settings
from collector.privacy.dpia_doc import Bullets, Doc, Heading, Para, Table, plain_text, to_markdown
from collector.reporting.notify import NotifyConfig
from collector.storage.retention import Periods
from rules.load import load_policy
from rules.schema import Policy

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy()


def settings(pol: Policy, events_days: int = 365, **notify: Any) -> dict[str, Any]:
    return dpia_settings.summary(4, pol, Periods(events_days, 2190), NotifyConfig(**notify),
                                 Path("/srv/collector"), "Oak Primary")  # fmt: skip


def texts(s: dict[str, Any]) -> dict[str, str]:
    pack = dpia.build(s, None, "2026-12-06 10:00 GMT")
    return {d.name: to_markdown(d) for d in pack.docs}


def test_the_pupils_notice_passes_the_ks2_check_and_adult_text_does_not(shipped: Policy) -> None:
    pack = dpia.build(settings(shipped), None, "today")
    pupils = pack.docs[1]
    assert pupils.name == "notice-pupils"
    assert pack.readability.passed, pack.readability.line()
    assert pack.readability.grade <= dpia_readability.KS2_MAX_GRADE
    # The check is a real one: the DPIA draft, written for adults, fails it.
    assert not dpia_readability.ks2(plain_text(pack.docs[0])).passed
    assert "KS2 readability: Flesch-Kincaid grade" in to_markdown(pack.docs[0])


def test_the_pupils_notice_stays_readable_with_every_setting_switched_on(shipped: Policy) -> None:
    profiles = tuple(replace(p, full_browsing_log=True) for p in shipped.profiles)
    pack = dpia.build(settings(replace(shipped, profiles=profiles), 30), None, "today")
    assert pack.readability.passed, pack.readability.line()


def test_what_is_captured_follows_the_settings(shipped: Policy) -> None:
    off = texts(settings(shipped))
    assert "detections, not keystrokes" in off["dpia"]
    assert "A full browsing log is off for every group." in off["dpia"]
    assert "It does not keep a list of all the websites you visit." in off["notice-pupils"]
    assert "Screenshots: off." in off["dpia"] and "Pupil roster: none." in off["dpia"]
    assert "up to 8" in off["notice-pupils"]
    assert "`minilm-l6-int8.onnx`" in off["dpia"]
    assert "| events (detections, USB decisions, health) | 365 days (about 1 year) |" in off["dpia"]
    assert "kept for 7 days (at most 20,000)" in off["dpia"]
    assert "`/srv/collector`" in off["dpia"]

    ks2 = replace(shipped.profile("ks2"), full_browsing_log=True)
    pol = replace(shipped, profiles=tuple(ks2 if p.name == "ks2" else p for p in shipped.profiles),
                  semantic=None, context_words=5)  # fmt: skip
    on = texts(settings(pol, 30, smtp_host="mail", email_to=("dsl@school",)))
    assert "A full browsing log is ON for: Key Stage 2 (ages 7-11)." in on["dpia"]
    assert "It keeps a list of all the websites you visit." in on["notice-pupils"]
    assert "Semantic stage: off." in on["dpia"] and "language model" not in on["notice-parents"]
    assert "up to 5" in on["notice-pupils"]
    assert "We keep what it finds for 30 days." in on["notice-pupils"]
    assert "announced by email" in on["dpia"]


def test_a_category_switched_off_is_off_in_the_dpia_and_gone_from_keyword_lists(
    shipped: Policy,
) -> None:
    cats = tuple(replace(c, enabled=c.name != "gambling") for c in shipped.categories)
    text = texts(settings(replace(shipped, categories=cats)))["dpia"]
    assert "| Gambling | `gambling` | off |" in text
    ks2_row = next(line for line in text.splitlines() if line.startswith("| Key Stage 2"))
    keyword_cell = ks2_row.split("|")[3]
    assert "gambling" not in keyword_cell and "grooming" in keyword_cell


def test_staff_and_pupils_get_their_own_profiles_words(shipped: Policy) -> None:
    t = texts(settings(shipped))
    assert "What staff type is not monitored." in t["notice-staff"]
    assert "betting money" in t["notice-pupils"] and "Gambling" not in t["notice-staff"]
    assert "rude pictures or videos" in t["notice-pupils"]


def test_roles_say_who_can_see_what(shipped: Policy) -> None:
    text = texts(settings(shipped))["dpia"]
    gov = next(line for line in text.splitlines() if line.startswith("| Governor |"))
    assert "no names" in gov and "incidents and their evidence" not in gov
    head = next(line for line in text.splitlines() if line.startswith("| Head teacher |"))
    assert "read and issue this DPIA pack" in head


def test_the_fingerprint_is_the_settings(shipped: Policy) -> None:
    a, b = settings(shipped), settings(shipped)
    assert dpia_settings.fingerprint(a) == dpia_settings.fingerprint(b)
    assert dpia_settings.fingerprint(a) != dpia_settings.fingerprint(settings(shipped, 90))
    pack = dpia.build(a, None, "today")
    assert pack.fingerprint in to_markdown(pack.docs[0])


def test_what_pcs_keep_is_the_agents_own_defaults() -> None:
    """The collector cannot import the agent, so the pack's copy is held to it here."""
    assert dpia_settings.PC_KEEP_ACKED_DAYS * 86_400 == outbox.DEFAULT_KEEP_ACKED_S
    assert dpia_settings.PC_KEEP_ACKED_EVENTS == outbox.DEFAULT_MAX_KEPT
    assert dpia_settings.PC_OUTBOX_MAX_EVENTS == outbox.DEFAULT_MAX_PENDING


def test_markdown_keeps_tables_whole() -> None:
    doc = Doc("x", "T", (Heading("H"), Para("p"), Bullets(("a", "b")),
                         Table(("k", "v"), (("a|b", "line\nbreak"),))))  # fmt: skip
    assert to_markdown(doc) == ("# T\n\n## H\n\np\n\n- a\n- b\n\n| k | v |\n|---|---|\n"
                                "| a\\|b | line break |\n")  # fmt: skip


def test_no_sentence_of_the_pupils_notice_is_long(shipped: Policy) -> None:
    import re

    text = plain_text(dpia_notices.pupils(settings(shipped)))
    sentences = [s for s in re.split(r"[.?!:]\s*", text) if s.strip()]
    longest = max(sentences, key=lambda s: len(s.split()))
    assert len(longest.split()) <= 14, longest


def test_an_imported_roster_is_named_as_personal_data_and_reported_as_a_change(
    shipped: Policy,
) -> None:
    from collector.privacy.dpia_changes import changes

    without = settings(shipped)
    with_roster = {**settings(shipped), "roster": dpia_settings.ROSTER_FIELDS}
    assert "Pupil roster: none" in texts(without)["dpia"]
    text = texts(with_roster)["dpia"]
    assert "Pupil roster: imported from the school's MIS" in text
    assert "year group" in text and "Governors and the technician never see it" in text
    assert any("roster" in line.lower() for line in changes(without, with_roster))


def test_profiles_following_the_year_group_say_what_pcs_receive(shipped: Policy) -> None:
    from collector.privacy.dpia_changes import changes

    roster = {**settings(shipped), "roster": dpia_settings.ROSTER_FIELDS}
    by_year = {**roster, "roster_profiles": "on"}
    assert "every PC receives" not in texts(roster)["dpia"]
    text = texts(by_year)["dpia"]
    assert "Profiles follow the year group: every PC receives each current pupil's" in text
    assert "nothing else of the roster (no name, year group, class or UPN)" in text
    assert any("roster_profiles" in line or "year group" in line
               for line in changes(roster, by_year))  # fmt: skip


def test_the_staff_notice_says_alerts_about_staff_go_to_the_head(shipped: Policy) -> None:
    roster = {**settings(shipped), "roster": dpia_settings.ROSTER_FIELDS}
    assert "Alerts about staff" not in texts(settings(shipped))["notice-staff"]
    assert "goes to the head teacher, as Keeping Children Safe" in texts(roster)["notice-staff"]
