"""The watchdog inside `Service.run`, against the real collector: a sensor that spins is shed,
the SENSOR_SHED status arrives, and the heartbeat shows the shed state, the sensor's CPU and the
watchdog's own line."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.identity import StateDir, load_identity
from agent.selfwatch import WatchdogLimits
from agent.sensors import SensorContext
from agent.sensors.registry import SensorSpec
from agent.service import Service, ServiceConfig
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration

Wait = Callable[..., None]


class Spinner:
    name = "browser"  # under a name the shipped policy's profiles ask for

    def __init__(self) -> None:
        self._stop = threading.Event()

    def run(self, ctx: SensorContext) -> None:
        while not self._stop.is_set():
            pass

    def stop(self) -> None:
        self._stop.set()


def statuses(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["event"] for e in events if e["event"].get("status", {}).get("kind") == kind]


def beats(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["event"]["heartbeat"] for e in events if "heartbeat" in e["event"]]


def shed_beat(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    for beat in beats(events):
        states = {s["name"]: s for s in beat["sensors"]}
        if states.get("browser", {}).get("state") == "shed":
            return beat
    return None


def test_a_spinning_sensor_is_shed_and_the_collector_hears_of_it(
    collector: CollectorHarness, state: StateDir, wait: Wait, tmp_path: Path
) -> None:
    agent_id = load_identity(state).agent_id
    limits = WatchdogLimits(check_s=0.1, sustained=3, sensor_cpu_percent=20)
    config = ServiceConfig(heartbeat_s=0.2, flush_s=10, watchdog=limits,
                           keyboard_socket=tmp_path / "kb.sock")  # fmt: skip
    service = Service(state, config, sensors=(SensorSpec("browser", lambda _s: Spinner()),))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    try:
        wait(lambda: statuses(collector.events(agent_id), "SENSOR_SHED"), what="SENSOR_SHED")
        wait(lambda: shed_beat(collector.events(agent_id)), what="a heartbeat after the shed")
    finally:
        stop.set()
        thread.join(60)
    events = collector.events(agent_id)
    (shed,) = statuses(events, "SENSOR_SHED")
    assert shed["status"]["detail"].startswith("the browser sensor used")
    beat = shed_beat(events)
    assert beat is not None
    names = [s["name"] for s in beat["sensors"]]
    assert names[-1] == "watchdog"
    assert next(s for s in beat["sensors"] if s["name"] == "watchdog")["detail"].startswith(
        "service ")


def spinner_cpu(events: list[dict[str, Any]]) -> bool:
    return any(s.get("cpu_percent", 0) > 20 for b in beats(events) for s in b["sensors"]
               if s["name"] == "browser" and s["state"] == "running")  # fmt: skip


def test_the_heartbeat_carries_each_sensors_cpu(
    collector: CollectorHarness, state: StateDir, wait: Wait, tmp_path: Path
) -> None:
    agent_id = load_identity(state).agent_id
    limits = WatchdogLimits(check_s=0.1, sustained=3, sensor_cpu_percent=1000)  # never shed
    config = ServiceConfig(heartbeat_s=0.2, flush_s=10, watchdog=limits,
                           keyboard_socket=tmp_path / "kb.sock")  # fmt: skip
    service = Service(state, config, sensors=(SensorSpec("browser", lambda _s: Spinner()),))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    try:
        wait(lambda: spinner_cpu(collector.events(agent_id)), what="the spinner's CPU")
    finally:
        stop.set()
        thread.join(60)
