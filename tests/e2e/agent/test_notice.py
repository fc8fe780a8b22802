"""The monitoring notice at login, end to end: a policy with its own notice text is published and
signed by a real collector, the agent (`safeguard-agent run`) holds it, and the per-login helper
(`keyboard-helper`) in a real X session (Xvfb) shows that text; pressing OK leaves the
indicator, and the agent's heartbeat says when the notice was shown and from which policy.

Nothing here waits for a time to pass: each step polls for what it needs, with long deadlines."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from agent.identity import StateDir, load_identity
from agent.notice_window import INDICATOR_TITLE, TEXT_PROPERTY, TITLE
from collector import policy as published
from rules.load import DEFAULT_DIR
from tests.e2e.agent.conftest import wait_until
from tests.e2e.agent.desktop import AgentProcesses, Desktop
from tests.harness import CollectorHarness

pytestmark = pytest.mark.e2e

NOTICE = ("Test School: this computer is monitored to keep you safe, as our Online Safety "
          "Policy says. Ask Mrs Khan (our DSL) if you have questions.")  # fmt: skip


def visible(desktop: Desktop, title: str) -> list[str]:
    """Ids of the viewable windows named exactly `title` (none yet: empty)."""
    import subprocess

    out = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
                         env=desktop.env, capture_output=True, text=True, timeout=60)  # fmt: skip
    return out.stdout.split()


def notice_property(desktop: Desktop, wid: str) -> str:
    from Xlib import display as xdisplay

    d: Any = xdisplay.Display(desktop.display)
    try:
        window = d.create_resource_object("window", int(wid))
        prop = window.get_full_property(d.intern_atom(TEXT_PROPERTY), d.intern_atom("UTF8_STRING"))
        return bytes(prop.value).decode() if prop is not None else ""
    finally:
        d.close()


def notice_beats(collector: CollectorHarness, agent_id: str) -> list[dict[str, Any]]:
    beats = [e["event"]["heartbeat"] for e in collector.events(agent_id)
             if "heartbeat" in e["event"]]  # fmt: skip
    return [b for b in beats if int(b.get("notice_shown_unix_ms", 0))]


def test_the_live_policys_notice_is_shown_at_login_and_its_showing_is_in_the_heartbeat(
    collector: CollectorHarness, state: StateDir, desktop: Desktop, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, rules)
    toml = rules / "policy.toml"
    lines = [f"notice = {NOTICE!r}" if ln.startswith("notice =") else ln
             for ln in toml.read_text().splitlines()]  # fmt: skip
    toml.write_text("\n".join(lines) + "\n")
    assert published.publish(collector.data, rules).version == 1
    # The agent holds the signed bundle as its last good policy from its first moment, so the
    # helper's first connection already gets it (a policy fetched later applies at next login).
    shutil.copy(collector.data.policy_dir / "current.json", state.root / "policy.json")
    agent_id = load_identity(state).agent_id
    started_ms = int(time.time() * 1000)

    procs = AgentProcesses(state.root, desktop, tmp_path / "work")
    try:
        # (offered once the account's matcher is ready: this changed policy compiles first)
        wid = wait_until(lambda: visible(desktop, TITLE), what="the notice window")[0]
        assert notice_property(desktop, wid) == NOTICE
        beat = wait_until(lambda: notice_beats(collector, agent_id), 90, "a heartbeat with it")[-1]
        assert beat["notice_version"] == "1"
        assert started_ms - 60_000 <= int(beat["notice_shown_unix_ms"]) <= int(time.time() * 1000)
        assert not visible(desktop, INDICATOR_TITLE)  # not until the pupil has pressed OK

        # Click the OK button (centred at the bottom of the window).
        geometry = dict(line.split("=") for line in desktop.xdotool(
            "getwindowgeometry", "--shell", wid).splitlines())  # fmt: skip
        x, y = int(geometry["WIDTH"]) // 2, int(geometry["HEIGHT"]) - 24 - 16
        desktop.xdotool("mousemove", "--window", wid, str(x), str(y), "click", "1")
        wait_until(lambda: not visible(desktop, TITLE), 60, "the notice to close")
        wait_until(lambda: visible(desktop, INDICATOR_TITLE), 60, "the indicator")
        agent_log = tmp_path / "work" / "logs" / "agent.err"
        wait_until(lambda: "notice.dismissed" in agent_log.read_text(), 60, "the OK logged")
        assert "how=ok" in agent_log.read_text()
    finally:
        procs.stop()
