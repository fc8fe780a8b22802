"""Sensors under the supervisor: crashes restarted within a budget, unavailable reported."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.policy import ActivePolicy
from agent.sensors import SensorContext, SensorUnavailable
from agent.sensors.registry import SensorSettings, SensorSpec
from agent.supervisor import SensorThread, Supervisor
from rules.load import load_policy

pytestmark = pytest.mark.unit

CTX = SensorContext(emit=lambda e: None, policy=lambda: ActivePolicy(0, load_policy()))
SETTINGS = SensorSettings(Path("/nonexistent"))


def wait(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.01)


class Crashy:
    name = "crashy"

    def __init__(self, crashes: list[int], limit: int) -> None:
        self._crashes, self._limit = crashes, limit
        self._stop = threading.Event()

    def run(self, ctx: SensorContext) -> None:
        if len(self._crashes) < self._limit:
            self._crashes.append(1)
            raise RuntimeError("boom")
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


def test_a_crashed_sensor_is_restarted_and_counted() -> None:
    crashes: list[int] = []
    spec = SensorSpec("crashy", lambda _s: Crashy(crashes, 2))
    t = SensorThread(spec, CTX, SETTINGS, budget=5, backoff_s=0.01)
    wait(lambda: t.state == "running" and t.restarts == 2)
    health = t.health()
    assert (health.state, health.restarts) == ("running", 2)
    t.stop(5)
    assert t.state == "stopped"


def test_past_the_budget_it_is_failed_not_looping() -> None:
    spec = SensorSpec("crashy", lambda _s: Crashy([], 10**6))
    t = SensorThread(spec, CTX, SETTINGS, budget=3, backoff_s=0.001)
    wait(lambda: t.state == "failed")
    assert t.restarts == 3 and "crashed 4 times" in t.detail


class NoDisplay:
    name = "keyboard"

    def run(self, ctx: SensorContext) -> None:
        raise SensorUnavailable("no X display")

    def stop(self) -> None:
        pass


def test_unavailable_is_reported_with_the_reason_and_not_restarted() -> None:
    t = SensorThread(SensorSpec("keyboard", lambda _s: NoDisplay()), CTX, SETTINGS)
    wait(lambda: t.state == "unavailable")
    assert t.health().detail == "no X display" and t.restarts == 0


def test_the_supervisor_follows_the_policy() -> None:
    made: list[str] = []

    def factory(name: str) -> Callable[[SensorSettings], Crashy]:
        return lambda _s: (made.append(name), Crashy([], 0))[1]

    sup = Supervisor([SensorSpec("keyboard", factory("keyboard")),
                      SensorSpec("usb", factory("usb"))], CTX, SETTINGS)  # fmt: skip
    sup.apply({"usb", "browser"})
    wait(lambda: [h.name for h in sup.health()] == ["usb"] and made == ["usb"])
    sup.apply({"keyboard"})
    wait(lambda: [h.name for h in sup.health()] == ["keyboard"])
    sup.stop()
    assert sup.health() == []
