"""The DPIA pack says whether screenshots are taken, for whom, of what, where they are kept,
who sees them and for how long, from the live policy's screenshots.toml (issue 18)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from collector.privacy import dpia, dpia_changes, dpia_settings
from collector.privacy.dpia_doc import to_markdown
from collector.reporting.notify import NotifyConfig
from collector.storage.retention import Periods
from rules.load import load_policy
from rules.schema import Policy, ScreenshotRule, Screenshots

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy()


def settings(pol: Policy) -> dict[str, Any]:
    return dpia_settings.summary(4, pol, Periods(365, 2190), NotifyConfig(),
                                 Path("/srv/collector"), "Oak Primary")  # fmt: skip


def with_shots(pol: Policy, retention_days: int = 0) -> Policy:
    rule = ScreenshotRule("ks2", ("extremism", "self_harm"), 4)
    return replace(pol, screenshots=Screenshots(True, (rule,), retention_days=retention_days))


def texts(s: dict[str, Any]) -> dict[str, str]:
    pack = dpia.build(s, None, "2026-12-06 10:00 GMT")
    assert pack.readability.passed, pack.readability.line()  # pupils' notice: KS2 words
    return {d.name: to_markdown(d) for d in pack.docs}


def test_the_shipped_policy_takes_none_and_the_pack_says_so(shipped: Policy) -> None:
    t = texts(settings(shipped))  # screenshots.toml ships switched off
    assert "Screenshots: off. The system takes no screenshots." in t["dpia"]
    assert "It does not take pictures of your screen." in t["notice-pupils"]
    assert "Screenshots: none are taken." in t["notice-parents"]


def test_switched_on_the_pack_says_for_whom_of_what_where_who_and_how_long(
    shipped: Policy,
) -> None:
    t = texts(settings(with_shots(shipped, retention_days=90)))
    dpia_text = " ".join(t["dpia"].split())
    assert "Screenshots: ON for profile `ks2`: extremism, self_harm at severity 4 or above" in (
        dpia_text)  # fmt: skip
    assert "Never captured: grooming, pornography, illegal" in dpia_text
    assert "the staff profile, or a password window" in dpia_text
    assert "`screenshots` folder" in dpia_text and "audit log" in dpia_text
    assert "Deputy DSL, Designated Safeguarding Lead, Head teacher" in dpia_text
    assert "kept 90 days" in dpia_text and "ticks the box" in dpia_text
    assert "takes a picture of that window" in t["notice-pupils"]
    assert "deleted after 90 days" in t["notice-parents"]
    as_events = " ".join(texts(settings(with_shots(shipped)))["dpia"].split())
    assert "kept as events (365 days (about 1 year))" in as_events


def test_the_pack_says_when_screenshots_change(shipped: Policy) -> None:
    off, on = settings(shipped), settings(with_shots(shipped))
    assert dpia_changes.changes(off, on) == ["Screenshots switched on"]
    assert dpia_changes.changes(on, off) == ["Screenshots switched off"]
    shorter = settings(with_shots(shipped, retention_days=30))
    assert dpia_changes.changes(on, shorter) == [
        "Screenshot retention changed from as events to 30 days"]
