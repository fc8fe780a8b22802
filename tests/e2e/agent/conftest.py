"""Fixtures for the agent's desktop tests: a real X server, the real collector, real processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.enrol import enrol
from agent.identity import StateDir
from agent.policy import ActivePolicy
from rules.load import load_policy
from tests.conftest import require_tool
from tests.e2e.agent.desktop import AgentProcesses, Desktop
from tests.harness import CollectorHarness

# Long: a helper is answered after the policy's compile (15 s of CPU here, several times that
# on a CI machine running two workers' agents, collectors and browsers at once).
WAIT_S = 240.0


def wait_until(condition: Callable[[], Any], timeout: float = WAIT_S, what: str = "") -> Any:
    """Poll a condition until it holds (returns its value); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)
    return value


@pytest.fixture(scope="session")
def shipped() -> ActivePolicy:
    """The shipped policy with ks2 compiled, shared: a compile takes 15 s of CPU here, and a
    login's helper is answered only once its account's matcher is; tests of what follows
    should not each wait for it (nor race their own deadlines against it)."""
    active = ActivePolicy(0, load_policy())
    active.compiled("ks2")
    return active


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    for tool in ("Xvfb", "xdotool", "xterm"):
        require_tool(tool)
    d = Desktop(tmp_path)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def state(collector: CollectorHarness, tmp_path: Path) -> StateDir:
    state = StateDir(tmp_path / "agent")
    enrol(state, collector.address, collector.new_token(), collector.ca_path.read_bytes())
    return state


def keyboard_running(collector: CollectorHarness, agent_id: str) -> bool:
    """A heartbeat says a helper is connected and capturing."""
    for e in reversed(collector.events(agent_id)):
        for s in e["event"].get("heartbeat", {}).get("sensors", []):
            if s["name"] == "keyboard" and ":running" in s.get("detail", ""):
                return True
    return False


@pytest.fixture
def agent(state: StateDir, desktop: Desktop, tmp_path: Path) -> Iterator[AgentProcesses]:
    procs = AgentProcesses(state.root, desktop, tmp_path / "work")
    try:
        yield procs
    finally:
        procs.stop()
