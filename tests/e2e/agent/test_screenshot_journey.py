"""Issue 18's "done when", end to end on a real desktop: a real collector (with its console)
publishes a policy with screenshots on, signed, carrying its own evidence key; the real agent
(`safeguard-agent run`) and its per-login helper (`keyboard-helper`, X RECORD) run on Xvfb; a
severe phrase typed with xdotool into a window of known content reaches the collector as a
detection carrying the picture's hash; the sealed picture follows on its own RPC, and the
collector holds exactly the file the chain names, which opens with the collector's key to
the window's pixels as `xwd` captures them; a DSL sees it on the incident page over HTTP and
the audit log names who saw it; a technician gets 404.

Nothing waits for a time to pass: each step polls for what it needs, with long deadlines."""

from __future__ import annotations

import base64
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from agent.identity import StateDir, load_identity
from agent.notice_window import TITLE
from agent.sensors.screen_x11 import downscale
from collector import policy as published
from collector.pki import load_evidence_key
from protos.evidence import digest, open_sealed
from rules.load import DEFAULT_DIR
from tests.e2e.agent.conftest import wait_until
from tests.e2e.agent.desktop import AgentProcesses, Desktop
from tests.e2e.agent.pattern_window import PatternWindow, xwd_image
from tests.e2e.agent.test_notice import visible
from tests.integration.console.support import Client, ConsoleHarness
from tests.integration.console.test_screenshots import audit_rows, fetch

pytestmark = pytest.mark.e2e

SHOTS = """[screenshots]
enabled = true
max_width = 640
[[rule]]
profile = "ks2"
categories = ["suicide"]
min_severity = 4
"""


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[ConsoleHarness]:
    """The collector with its console, and one account per role (the agent enrols with it)."""
    harness = ConsoleHarness(tmp_path / "collector")
    harness.start()
    try:
        harness.add_staff()
        yield harness
    finally:
        harness.stop()


def detections(collector: ConsoleHarness, agent_id: str) -> list[dict[str, Any]]:
    return [e["event"] for e in collector.events(agent_id) if "keyword" in e["event"]]


def held(collector: ConsoleHarness, sha: str) -> str | None:
    row = collector.with_store(lambda s: s.con.execute(
        "SELECT path FROM screenshots WHERE sha256 = ?", [sha]).fetchone())  # fmt: skip
    return str(row[0]) if row else None


def test_a_severe_phrase_typed_on_the_desktop_reaches_the_dsl_with_its_screenshot(
    collector: ConsoleHarness, state: StateDir, desktop: Desktop, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, rules)
    (rules / "screenshots.toml").write_text(SHOTS)
    # The collector adds its own evidence key to what it publishes, signed with the policy.
    assert published.publish(collector.data, rules).version == 1
    shutil.copy(collector.data.policy_dir / "current.json", state.root / "policy.json")
    agent_id = load_identity(state).agent_id

    window = PatternWindow(desktop.display, title="chat")
    procs = AgentProcesses(state.root, desktop, tmp_path / "work")
    try:
        helper_log = tmp_path / "work" / "logs" / "helper.err"
        wait_until(lambda: "helper.capturing" in helper_log.read_text(), 120, "key capture")
        # The monitoring notice opens at login and stays until OK: once it is up, the screen
        # no longer changes between the agent's capture and xwd's.
        wait_until(lambda: visible(desktop, TITLE), 120, "the monitoring notice")
        desktop.xdotool("windowfocus", "--sync", str(window.id))
        desktop.type("i want to die\n")
        event = wait_until(lambda: detections(collector, agent_id), 120, "the detection")[0]
        assert event["keyword"]["category"] == "suicide"
        sha = base64.b64decode(event["screenshot_sha256"]).hex()
        path = wait_until(lambda: held(collector, sha), 120, "the screenshot at the collector")
        sealed = (collector.data.root / path).read_bytes()
        assert digest(sealed).hex() == sha  # the chain carries the hash of exactly this file
        image = open_sealed(load_evidence_key(collector.data), sealed, agent_id,
                            event["event_id"])  # fmt: skip
        expected = downscale(xwd_image(desktop.display, window.id), 640)
        got = Image.open(io.BytesIO(image)).convert("RGB")
        bands: Any = ImageChops.difference(got, expected).getextrema()
        assert max(hi for _, hi in bands) <= 2
        # Uploaded and acknowledged: the PC keeps no copy.
        wait_until(lambda: not any((state.root / "evidence").glob("*.sgev")), 60, "PC copy gone")

        incident = collector.op("incidents", status="")["rows"][0]["id"]
        link = f"/incidents/{incident}/screenshots/{sha}"
        dsl = Client(collector.url)
        dsl.login("dsl")
        assert f'href="{link}"' in dsl.get(f"/incidents/{incident}")[1]
        status, body, _ = fetch(dsl, f"{link}/image")
        assert status == 200 and body == image
        assert [r[0] for r in audit_rows(collector, "view_screenshot")] == ["dsl"]
        tech = Client(collector.url)
        tech.login("tech")
        assert fetch(tech, f"{link}/image")[0] == 404
        # An honest agent's events, heartbeats included, are never taken for tampering.
        assert collector.tampering(agent_id) == []
    finally:
        procs.stop()
        window.close()
