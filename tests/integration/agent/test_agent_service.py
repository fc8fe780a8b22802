"""`safeguard-agent run` against the real collector: status events, heartbeats, signals, kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.identity import StateDir, load_identity
from agent.outbox import Outbox
from agent.service import Service, ServiceConfig
from protos import events_pb2
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration

Wait = Callable[..., None]
ROOT = Path(__file__).resolve().parents[3]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        payload = e["event"]
        out.append(
            payload["status"]["kind"]
            if "status" in payload
            else next(
                k for k in ("heartbeat", "test_alert", "keyword", "url", "usb") if k in payload
            )
        )
    return out


def agent_cli(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_run_reports_started_heartbeats_and_stopping(
    collector: CollectorHarness, state: StateDir, wait: Wait
) -> None:
    agent_id = load_identity(state).agent_id
    stop = threading.Event()
    result: list[int] = []
    service = Service(state, ServiceConfig(heartbeat_s=0.2, flush_s=10))
    thread = threading.Thread(target=lambda: result.append(service.run(stop)))
    thread.start()
    wait(lambda: kinds(collector.events(agent_id)).count("heartbeat") >= 2, what="heartbeats")
    stop.set()
    thread.join(60)
    assert result == [0]
    events = collector.events(agent_id)
    seen = kinds(events)
    assert seen[0] == "STARTED" and seen[-1] == "STOPPING"  # flushed before exit
    beat = next(e["event"]["heartbeat"] for e in events if "heartbeat" in e["event"])
    assert int(beat["rss_bytes"]) > 0 and beat["agent_version"]
    # every sensor some profile asks for reports a real state (no display here: no helper)
    assert {s["name"] for s in beat["sensors"]} >= {"keyboard"}
    assert all(s["state"] in ("running", "unavailable", "crashed") for s in beat["sensors"])
    assert beat["policy_version"] == "0"  # the shipped policy; nothing published
    box = Outbox.open(state.outbox, agent_id)
    assert box.counts().pending + box.counts().unacked == 0
    box.close()


def test_sigterm_stops_cleanly_and_a_second_run_is_refused(
    collector: CollectorHarness, state: StateDir, wait: Wait
) -> None:
    agent_id = load_identity(state).agent_id
    proc = agent_cli("run", "--state", str(state.root), "--heartbeat", "30")
    try:
        wait(lambda: "STARTED" in kinds(collector.events(agent_id)), what="STARTED")
        second = agent_cli("run", "--state", str(state.root))
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1 and "another agent process" in err
        alert = agent_cli("test-alert", "--state", str(state.root), "--note", "wired up")
        out, _ = alert.communicate(timeout=60)
        assert alert.returncode == 0
        event_id = out.strip()
        wait(
            lambda: event_id in {e["event"]["event_id"] for e in collector.events(agent_id)},
            what="the test alert",
        )
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert kinds(collector.events(agent_id))[-1] == "STOPPING"


def test_agent_killed_while_shipping_then_restarted_loses_and_repeats_nothing(
    collector: CollectorHarness, state: StateDir, wait: Wait
) -> None:
    agent_id = load_identity(state).agent_id
    box = Outbox.open(state.outbox, agent_id)
    ids = [
        box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert(note=str(i))))
        for i in range(3000)
    ]
    box.close()
    proc = agent_cli("run", "--state", str(state.root))
    wait(lambda: collector.count(agent_id) > 0, what="shipping to start")
    proc.send_signal(signal.SIGKILL)  # most likely mid-stream, with batches in flight
    proc.communicate(timeout=60)
    proc = agent_cli("run", "--state", str(state.root))
    try:
        wait(
            lambda: (
                len({e["event"]["event_id"] for e in collector.events(agent_id)} & set(ids))
                == len(ids)
            ),
            60,
            "every event",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    stored = Counter(e["event"]["event_id"] for e in collector.events(agent_id))
    assert set(stored.values()) == {1}
    assert [i for i in stored if i in set(ids)] == ids
    assert collector.tampering() == []
