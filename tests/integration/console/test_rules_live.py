"""The incident engine judges events by the policy the agents run: the newest published
bundle, picked up by a running collector the moment it is published."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from collector import policy as published
from collector.incidents import config
from rules.load import DEFAULT_DIR
from tests.integration.console.support import Agent, ConsoleHarness, keyword

pytestmark = pytest.mark.integration


def _gambling_at_severity_4(tmp_path: Path) -> Path:
    folder = tmp_path / "stricter"
    shutil.copytree(DEFAULT_DIR, folder)
    incidents = folder / "incidents.toml"
    text = incidents.read_text()
    rule = '[[severity]]\ncategory = "gambling"\nmin_score = 0\nseverity = 4\n\n'
    incidents.write_text(text.replace("[[severity]]", rule + "[[severity]]", 1))
    return folder


def _severities(console: ConsoleHarness) -> dict[str, int]:
    return {r["account"]: r["severity"] for r in console.op("incidents", status="")["rows"]}


def test_a_policy_published_while_serving_changes_how_new_events_are_judged(
    console: ConsoleHarness, tmp_path: Path
) -> None:
    agent = Agent.enrol(console)
    agent.ship(keyword("gambling", ["free spins"], account="pupil.amy"))
    assert _severities(console)["pupil.amy"] == 2  # the shipped rules: any category, score 10
    published.publish(console.data, _gambling_at_severity_4(tmp_path))
    agent.ship(keyword("gambling", ["free spins"], account="pupil.ben"))
    assert _severities(console) == {"pupil.amy": 2, "pupil.ben": 4}


def test_rules_come_from_the_published_bundle_and_a_forged_one_is_not_used(
    console: ConsoleHarness, tmp_path: Path
) -> None:
    rules, version = config.for_collector(console.data)
    assert version == "" and "not published" in rules.source
    published.publish(console.data, _gambling_at_severity_4(tmp_path))
    rules, version = config.for_collector(console.data)
    assert version == "1" and rules.source == "published policy version 1"
    assert rules.severity("gambling", 0) == 4
    current = console.data.policy_dir / "current.json"
    current.write_bytes(current.read_bytes().replace(b'"signature":"', b'"signature":"AAAA', 1))
    rules, version = config.for_collector(console.data)
    assert version == "1" and "not published" in rules.source  # the shipped rules, not forged ones
    assert rules.severity("gambling", 0) == 2
