"""Keyboard capture on a real X server: xdotool types into real xterm windows, pynput hears it in
the per-login helper, the service matches it, and detections reach the real collector."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.identity import StateDir, load_identity
from collector import policy as published
from rules.load import DEFAULT_DIR
from tests.e2e.agent.conftest import keyboard_running, wait_until
from tests.e2e.agent.desktop import AgentProcesses, Desktop
from tests.harness import CollectorHarness

pytestmark = pytest.mark.e2e


def keyword_events(collector: CollectorHarness, agent_id: str) -> list[dict[str, Any]]:
    return [e["event"] for e in collector.events(agent_id) if "keyword" in e["event"]]


def start(collector: CollectorHarness, state: StateDir, desktop: Desktop) -> str:
    agent_id = load_identity(state).agent_id
    desktop.window("notes")
    desktop.focus("notes")
    wait_until(lambda: keyboard_running(collector, agent_id), what="the helper capturing")
    return agent_id


def test_typed_terms_evasions_and_backspaces_reach_the_collector_and_innocent_text_does_not(
    collector: CollectorHarness, state: StateDir, desktop: Desktop, agent: AgentProcesses
) -> None:
    agent_id = start(collector, state, desktop)
    desktop.type("I live in Scunthorpe near Middlesex and Essex\n")  # innocent
    desktop.type("I will k.i.l.l you\n")  # evasion by separators
    desktop.type("this is 0ur l1ttle s3cret\n")  # leetspeak grooming phrase
    desktop.type("i will kill")  # typed, then erased before the word ended: not a detection
    desktop.key(*["BackSpace"] * 4)
    desktop.type("hug you\n")
    desktop.type("I want to kilx")  # a typo corrected with Backspace
    desktop.key("BackSpace")
    desktop.type("l myself\n")
    wait_until(lambda: len(keyword_events(collector, agent_id)) >= 3, what="three detections")
    desktop.type("sentinel: dont tell your mum\n")  # everything typed before has been judged
    wait_until(lambda: len(keyword_events(collector, agent_id)) >= 4, what="the sentinel")
    found = keyword_events(collector, agent_id)
    got = [(e["keyword"]["category"], e["keyword"]["context"]) for e in found]
    assert got == [
        ("bullying", "I will k.i.l.l you"),
        ("grooming", "this is 0ur l1ttle s3cret"),
        ("suicide", "I want to kill myself"),
        ("grooming", "sentinel: dont tell your mum"),
    ]
    first = found[0]
    assert first["account"] == "root" and int(first["severity"]) >= 1
    assert first["keyword"]["source"] == "keyboard"
    assert first["keyword"]["application"] and first["keyword"]["window_title"] == "notes"
    assert any("kill" in term for term in first["keyword"]["terms"])


def test_focus_change_ends_the_text_and_a_password_prompt_is_not_captured(
    collector: CollectorHarness, state: StateDir, desktop: Desktop, agent: AgentProcesses
) -> None:
    agent_id = start(collector, state, desktop)
    desktop.window("Enter password")
    desktop.type("I will kill you")  # no word end yet: the hit waits for the next key
    desktop.focus("Enter password")
    desktop.type("i will kill you\n")  # into a password prompt: dropped in the helper
    desktop.focus("notes")
    desktop.type("x")  # first key in the new focus: the old text is settled first
    wait_until(lambda: keyword_events(collector, agent_id), what="the settled detection")
    desktop.type("\nsentinel dont tell your mum\n")
    wait_until(lambda: len(keyword_events(collector, agent_id)) >= 2, what="the sentinel")
    contexts = [e["keyword"]["context"] for e in keyword_events(collector, agent_id)]
    assert contexts == ["I will kill you", "sentinel dont tell your mum"]


def test_keys_typed_while_a_new_policy_compiles_are_judged_by_the_one_before(
    collector: CollectorHarness, state: StateDir, desktop: Desktop, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A new policy's matcher compiles for 15-30 s of CPU on each PC. Keys typed meanwhile
    are judged by the matcher before it (they used to be dropped: the helper's sends time
    out while the service is busy), and the new one takes over once it is ready."""
    monkeypatch.setenv("SAFEGUARD_POLICY_CACHE", str(tmp_path / "own-matchers"))  # compiles
    agent = AgentProcesses(state.root, desktop, tmp_path / "work")
    try:
        agent_id = start(collector, state, desktop)
        log = agent.logs / "agent.err"
        wait_until(lambda: "policy.compiled version=" in log.read_text(), what="a matcher")
        folder = tmp_path / "rules-v2"  # the shipped lists and one new grooming term
        shutil.copytree(DEFAULT_DIR, folder)
        with (folder / "keywords" / "grooming.toml").open("a") as fh:
            fh.write('\n[[term]]\nphrase = "zebra quokka"\nweight = 10\n'
                     'why = "A test term."\nexample = "zebra quokka"\n')  # fmt: skip
        new = published.publish(collector.data, folder).version
        wait_until(lambda: f"policy.applied version={new}" in log.read_text(), what="applied")
        desktop.type("i want to kill myself\n")  # while version 2 compiles
        typed = log.read_text()
        assert f"policy.compiled version={new}" not in typed, (
            "the new policy compiled before the typing ended: this test tests nothing here")
        wait_until(lambda: keyword_events(collector, agent_id), what="the detection")
        wait_until(lambda: f"policy.compiled version={new}" in log.read_text(), what="compiled")
        desktop.type("sentinel zebra quokka\n")  # judged by the new policy
        wait_until(lambda: len(keyword_events(collector, agent_id)) >= 2, what="the sentinel")
        got = [(e["keyword"]["category"], e["keyword"]["context"])
               for e in keyword_events(collector, agent_id)]  # fmt: skip
        assert got == [("suicide", "i want to kill myself"),
                       ("grooming", "sentinel zebra quokka")]  # fmt: skip
    finally:
        agent.stop()
