"""The watchdog sheds a sensor that spins: real sensor threads under the real supervisor, their
CPU read from /proc by the real sampler; low limits and short checks, outcomes polled for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.policy import ActivePolicy
from agent.selfwatch import Watchdog, WatchdogLimits
from agent.sensors import SensorContext
from agent.sensors.registry import SensorSettings, SensorSpec
from agent.supervisor import Supervisor
from protos import events_pb2
from rules.load import load_policy

pytestmark = pytest.mark.integration

CTX = SensorContext(emit=lambda e: None, policy=lambda: ActivePolicy(0, load_policy()))
LIMITS = WatchdogLimits(check_s=0.1, sustained=3, sensor_cpu_percent=20.0,
                        helper_rss_mb=1000, service_rss_mb=100_000)  # fmt: skip
RELEASE = threading.Event()  # lets the spinner that ignores stop() end with its test


def wait_until(cond: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Spinner:
    """Busy in a loop (a parser stuck on a pathological file), but stops when asked."""

    name = "spinner"

    def __init__(self, obey: bool = True) -> None:
        self._stop = threading.Event()
        self._obey = obey

    def run(self, ctx: SensorContext) -> None:
        x = 0
        while not (self._stop.is_set() if self._obey else RELEASE.is_set()):
            x += 1

    def stop(self) -> None:
        self._stop.set()


class Quiet:
    name = "quiet"

    def __init__(self) -> None:
        self._stop = threading.Event()

    def run(self, ctx: SensorContext) -> None:
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


class Running:
    def __init__(self, obey: bool = True) -> None:
        specs = [SensorSpec("spinner", lambda _s: Spinner(obey)),
                 SensorSpec("quiet", lambda _s: Quiet())]  # fmt: skip
        self.supervisor = Supervisor(specs, CTX, SensorSettings(Path("/nonexistent")))
        self.supervisor.apply({"spinner", "quiet"})
        self.emitted: list[events_pb2.Event] = []
        self.watchdog = Watchdog(LIMITS, self.supervisor, self.emitted.append)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watchdog.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def state(self, name: str) -> str:
        return next((h.state for h in self.supervisor.health() if h.name == name), "absent")

    def shed_events(self) -> list[events_pb2.AgentStatus]:
        return [e.status for e in self.emitted
                if e.status.kind == events_pb2.AgentStatus.SENSOR_SHED]  # fmt: skip

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.supervisor.stop()


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running()
    try:
        yield r
    finally:
        r.close()


def test_a_spinning_sensor_is_shed_and_says_which_and_why(running: Running) -> None:
    wait_until(running.shed_events, "a SENSOR_SHED status")
    (status,) = running.shed_events()
    assert "the spinner sensor used" in status.detail
    assert "of a CPU core for 0.3 s (limit 20%)" in status.detail
    assert running.state("spinner") == "shed"
    shed = next(h for h in running.supervisor.health() if h.name == "spinner")
    assert "stopped until the next policy" in shed.detail
    # The quiet sensor beside it is never touched, however long the watchdog keeps checking.
    seen = running.watchdog.checks
    wait_until(lambda: running.watchdog.checks >= seen + 10, "ten more checks")
    assert running.state("quiet") == "running"
    assert len(running.shed_events()) == 1  # shed once, not restarted behind our back


def test_a_new_policy_brings_a_shed_sensor_back(running: Running) -> None:
    wait_until(lambda: running.state("spinner") == "shed", "the spinner shed")
    running.supervisor.apply({"spinner", "quiet"})  # what a newly applied policy does
    wait_until(lambda: running.state("spinner") == "running", "the spinner running again")


def test_the_heartbeat_figure_is_the_sensors_own_cpu(running: Running) -> None:
    wait_until(lambda: running.watchdog.cpu_percent("spinner") > 20, "the spinner measured")
    assert running.watchdog.cpu_percent("quiet") < 5


def test_a_sensor_that_ignores_stop_is_shed_and_reported_as_still_running() -> None:
    RELEASE.clear()
    r = Running(obey=False)
    try:
        wait_until(r.shed_events, "a SENSOR_SHED status")
        assert "its thread did not stop" in r.shed_events()[0].detail
        shed = next(h for h in r.supervisor.health() if h.name == "spinner")
        assert "still runs until the agent restarts" in shed.detail
    finally:
        RELEASE.set()
        r.close()
