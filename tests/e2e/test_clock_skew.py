"""A PC whose clock is off (issue 15, finding 7), with real processes: the agent runs under
`faketime`, the collector on the real clock.

- Two hours ahead: the collector measures the skew, flags the agent's events and its record
  (`safeguard-collector agents`), tells the agent, which says so in its log and in `status`,
  and the agent still fetches its policy (before: refused as more than 15 minutes off, so a
  skewed PC never got its policy).
- Past the server certificate's end: `status` shows the failed handshake and its cause, and
  marks it resolved once the clock is right and a session opens.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.identity import StateDir
from collector.storage.store import Store
from tests.conftest import require_tool
from tests.processes import BIN, CollectorProcess, run

pytestmark = pytest.mark.e2e
TWO_HOURS_MS = 2 * 3600 * 1000


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data, self.state = root / "collector", root / "agent"
        run("safeguard-collector", "init", "--data", self.data)  # publishes policy version 1
        self.collector = CollectorProcess(self.data)
        self.collector.start()
        token = run("safeguard-collector", "token", "--data", self.data).stdout
        run("safeguard-agent", "enroll", "--state", self.state, "--collector",
            self.collector.address, "--token-file", "-", "--ca", self.data / "ca.pem",
            stdin=token)  # fmt: skip
        self.agent_id = json.loads((self.state / "identity.json").read_text())["agent_id"]
        self.agent: subprocess.Popen[bytes] | None = None
        self.log = root / "agent.log"

    def start_agent(self, shift: str | None) -> None:
        """`safeguard-agent run`, its clock shifted by faketime (e.g. "+2h"), or not."""
        prefix = [require_tool("faketime"), "-f", shift] if shift else []
        with self.log.open("ab") as log:
            self.agent = subprocess.Popen(
                [*prefix, str(BIN / "safeguard-agent"), "run", "--state", str(self.state),
                 "--heartbeat", "1", "--log-level", "warning"],
                stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip

    def stop_agent(self) -> None:
        if self.agent is not None:  # faketime and the agent under it: stop both, as a group
            os.killpg(self.agent.pid, signal.SIGTERM)
            self.agent.wait(60)
            self.agent = None
            # faketime may exit before the agent has: wait for the agent to let go of its folder
            wait_until(lambda: not StateDir(self.state).is_locked(), "the agent stopped")

    def status(self) -> str:
        return run("safeguard-agent", "status", "--state", self.state, check=False).stdout

    def agents(self) -> list[dict]:  # type: ignore[type-arg]
        rows: list[dict] = json.loads(  # type: ignore[type-arg]
            run("safeguard-collector", "agents", "--data", self.data, "--format", "json").stdout
        )
        return rows


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    try:
        yield s
    finally:
        s.stop_agent()
        s.collector.stop()


def test_a_pc_two_hours_ahead_is_measured_flagged_told_and_still_gets_its_policy(
    site: Site,
) -> None:
    site.start_agent("+2h")
    wait_until(lambda: site.agents()[0]["clock_skew_ms"] is not None, "the skew measured")
    agent = site.agents()[0]
    assert abs(agent["clock_skew_ms"] - TWO_HOURS_MS) < 60_000
    assert agent["clock_skewed"]
    table = run("safeguard-collector", "agents", "--data", site.data).stdout
    assert "clock 2 h 0 min ahead" in table or "clock 1 h 59 min ahead" in table

    wait_until(lambda: "policy_version: 1" in site.status(), "the policy fetched and applied")
    status = site.status()
    assert "clock_skew:   +72" in status and "beyond the collector's limit" in status
    assert "last_error:   none recorded" in status
    wait_until(lambda: "clock.skewed skew_s=7" in site.log.read_text(), "clock.skewed logged")
    site.stop_agent()

    site.collector.stop()  # DuckDB has one writer: read the events once it is gone
    store = Store(site.data / "collector.duckdb", read_only=True)
    try:
        rows = store.con.execute(
            "SELECT count(*), min(clock_skew_ms), max(clock_skew_ms), "
            "count(*) FILTER (WHERE clock_skew_ms IS NULL) FROM events WHERE agent_id = ?",
            [site.agent_id],
        ).fetchone()
    finally:
        store.close()
    assert rows is not None and rows[0] > 0
    assert rows[3] == 0  # every event of the skewed session is flagged
    assert abs(rows[1] - TWO_HOURS_MS) < 60_000 and rows[1] == rows[2]


def test_a_pc_past_the_certificate_shows_the_tls_failure_in_status_until_it_ships_again(
    site: Site,
) -> None:
    site.start_agent("+1000d")  # the server certificate is valid for two years
    wait_until(lambda: "last_error:   " in site.status()
               and "none recorded" not in site.status().split("last_error:")[1].splitlines()[0],
               "a shipping error in status")  # fmt: skip
    status = site.status()
    line = next(x for x in status.splitlines() if x.startswith("last_error:"))
    assert "has expired by this PC's clock" in line and "NTP" in line
    assert "not resolved" in line
    site.stop_agent()

    site.start_agent(None)  # the clock set right
    wait_until(lambda: "resolved: a session opened" in site.status(), "the error resolved")
    assert "clock_skew:   +0 s" in site.status() or "clock_skew:   -0 s" in site.status()
