"""Screenshot evidence end to end on a real desktop: a policy with screenshots on and the
collector's evidence key is published and signed by a real collector; the real agent
(`safeguard-agent run`) and its per-login helper (`keyboard-helper`, X RECORD) run on Xvfb;
a severe phrase typed with xdotool into a window of known content reaches the collector as a
detection carrying the picture's hash, and the sealed file the agent keeps opens, with the
collector's private key, to the window's pixels as `xwd` captures them (the collector still
answers PutEvidence UNIMPLEMENTED on main, so the file waits on the PC).

Nothing waits for a time to pass: each step polls for what it needs, with long deadlines."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from PIL import Image, ImageChops

from agent.identity import StateDir, load_identity
from agent.notice_window import TITLE
from agent.sensors.screen_x11 import downscale
from collector import policy as published
from protos.evidence import digest, open_sealed, public_key_of
from rules.load import DEFAULT_DIR
from rules.load_evidence import evidence_key_file
from tests.e2e.agent.conftest import wait_until
from tests.e2e.agent.desktop import AgentProcesses, Desktop
from tests.e2e.agent.pattern_window import PatternWindow, xwd_image
from tests.e2e.agent.test_notice import visible
from tests.harness import CollectorHarness

pytestmark = pytest.mark.e2e

SHOTS = """[screenshots]
enabled = true
max_width = 640
[[rule]]
profile = "ks2"
categories = ["suicide"]
min_severity = 4
"""


def detections(collector: CollectorHarness, agent_id: str) -> list[dict[str, Any]]:
    return [e["event"] for e in collector.events(agent_id) if "keyword" in e["event"]]


def test_a_severe_phrase_typed_on_the_desktop_reaches_the_collector_with_its_sealed_picture(
    collector: CollectorHarness, state: StateDir, desktop: Desktop, tmp_path: Path
) -> None:
    key = X25519PrivateKey.generate()
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, rules)
    (rules / "screenshots.toml").write_text(SHOTS)
    (rules / "evidence_key.toml").write_text(evidence_key_file(public_key_of(key)))
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
        sha = base64.b64decode(event["screenshot_sha256"])
        sealed_path = state.root / "evidence" / f"{event['event_id']}.sgev"
        sealed = sealed_path.read_bytes()
        assert digest(sealed) == sha  # the chain carries the hash of exactly this file
        got = Image.open(io.BytesIO(open_sealed(key, sealed, agent_id, event["event_id"])))
        expected = downscale(xwd_image(desktop.display, window.id), 640)
        bands: Any = ImageChops.difference(got.convert("RGB"), expected).getextrema()
        assert max(hi for _, hi in bands) <= 2
    finally:
        procs.stop()
        window.close()
