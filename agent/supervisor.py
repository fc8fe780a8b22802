"""Running sensors: one thread each, restarted after a crash within a budget (osquery-style),
started and stopped as the active policy's profiles ask, and their health for the heartbeat.

    state        meaning                                          restarted?
    running      run() is working
    unavailable  run() raised SensorUnavailable (no display,       no: reported with the reason
                 no udev access, Wayland ...)
    crashed      run() raised anything else                       yes, after 1 s, 2 s, 4 s ...
                                                                  up to `budget` in `window_s`
    failed       crashed more often than the budget allows        no, until the agent restarts
    stopped      the policy no longer asks for it, or shutdown
    shed         the watchdog (agent/selfwatch.py) found it over   no, until the next policy
                 its CPU limit for a sustained period and stopped   arrives (or the agent
                 it                                                 restarts)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence

from agent.sensors import HelperProcess, Sensor, SensorContext, SensorUnavailable
from agent.sensors.registry import SensorSettings, SensorSpec
from protos import events_pb2

log = logging.getLogger(__name__)


class SensorThread:
    def __init__(
        self,
        spec: SensorSpec,
        ctx: SensorContext,
        settings: SensorSettings,
        budget: int = 5,
        window_s: float = 600.0,
        backoff_s: float = 1.0,
    ) -> None:
        self.spec = spec
        self._settings = settings
        self.state, self.detail, self.restarts = "starting", "", 0
        self._ctx = ctx
        self._budget, self._window_s, self._backoff_s = budget, window_s, backoff_s
        self._crashes: deque[float] = deque()
        self._stop = threading.Event()
        self._sensor: Sensor | None = None
        self._thread = threading.Thread(target=self._loop, name=f"sensor-{spec.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        delay = self._backoff_s
        while not self._stop.is_set():
            try:
                self._sensor = self.spec.factory(self._settings)
                if self._stop.is_set():
                    break
                self.state, self.detail = "running", ""
                self._sensor.run(self._ctx)
                self.state = "stopped"
                return
            except SensorUnavailable as exc:
                self.state, self.detail = "unavailable", str(exc)[:300]
                log.warning("sensor.unavailable name=%s reason=%s", self.spec.name, exc)
                return
            except Exception as exc:  # a sensor fault must not take the agent down
                log.exception("sensor.crashed name=%s", self.spec.name)
                self.state, self.detail = "crashed", f"{type(exc).__name__}"
            now = time.monotonic()
            self._crashes.append(now)
            while self._crashes and now - self._crashes[0] > self._window_s:
                self._crashes.popleft()
            if len(self._crashes) > self._budget:
                self.state = "failed"
                self.detail = f"crashed {len(self._crashes)} times in {self._window_s:g}s"
                log.error("sensor.gave_up name=%s %s", self.spec.name, self.detail)
                return
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, 60.0)
            self.restarts += 1
            log.info("sensor.restarting name=%s restarts=%d", self.spec.name, self.restarts)
        self.state = "stopped"

    def stop(self, timeout: float) -> bool:
        """Ask the sensor to stop and wait up to `timeout`; False if its thread is still
        running then (a loop that never looks at stop(): Python cannot kill a thread)."""
        self._stop.set()
        if self._sensor is not None:
            self._sensor.stop()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def threads(self) -> set[int]:
        """The OS ids of this sensor's thread and of the threads it named "<name>-..."."""
        own = {self._thread.native_id} if self._thread.native_id is not None else set()
        prefix = f"{self.spec.name}-"
        return own | {t.native_id for t in threading.enumerate()
                      if t.name.startswith(prefix) and t.native_id is not None}  # fmt: skip

    def helpers(self) -> list[HelperProcess]:
        found = getattr(self._sensor, "helpers", None)
        return list(found()) if callable(found) else []

    def health(self) -> events_pb2.SensorHealth:
        state, detail = self.state, self.detail
        report = getattr(self._sensor, "status", None)  # a sensor may say more (the broker)
        if state == "running" and callable(report):
            state, detail = report()
        return events_pb2.SensorHealth(name=self.spec.name, state=state, detail=detail,
                                       restarts=self.restarts)  # fmt: skip


class Supervisor:
    """The set of running sensors follows the sensor names the active profiles list."""

    def __init__(self, specs: Sequence[SensorSpec], ctx: SensorContext,
                 settings: SensorSettings) -> None:  # fmt: skip
        self._specs = specs
        self._settings = settings
        self._ctx = ctx
        self._lock = threading.Lock()
        self._running: dict[str, SensorThread] = {}
        self._shed: dict[str, events_pb2.SensorHealth] = {}  # name -> its health since shed

    def apply(self, wanted: Iterable[str]) -> None:
        """Run exactly the sensors named. Called at start and for each new policy, so a new
        policy also brings back the sensors the watchdog shed."""
        names = set(wanted)
        with self._lock:
            if self._shed:
                log.info("sensor.shed_lifted names=%s reason=new_policy", ",".join(self._shed))
                self._shed.clear()
            for name in [n for n in self._running if n not in names]:
                log.info("sensor.disabled_by_policy name=%s", name)
                self._running.pop(name).stop(timeout=2.0)
            for spec in self._specs:
                if spec.name in names and spec.name not in self._running:
                    self._running[spec.name] = SensorThread(spec, self._ctx, self._settings)

    def shed(self, name: str, reason: str) -> bool:
        """Stop a sensor the watchdog found over its limits and keep it stopped until the next
        policy. False if it was not running, or if its thread did not end when asked."""
        with self._lock:
            sensor = self._running.pop(name, None)
            if sensor is None:
                return False
            self._shed[name] = events_pb2.SensorHealth(name=name, state="shed", detail=reason,
                                                       restarts=sensor.restarts)  # fmt: skip
        stopped = sensor.stop(timeout=2.0)
        if not stopped:
            self._shed[name].detail = (f"{reason}; its thread did not stop when asked and "
                                       "still runs until the agent restarts")[:500]  # fmt: skip
        return stopped

    def threads(self) -> dict[str, set[int]]:
        """Each running sensor's OS thread ids, for the watchdog's CPU sample."""
        with self._lock:
            return {name: s.threads() for name, s in self._running.items()}

    def helpers(self) -> list[HelperProcess]:
        with self._lock:
            running = list(self._running.values())
        return [h for s in running for h in s.helpers()]

    def health(self) -> list[events_pb2.SensorHealth]:
        with self._lock:
            return [s.health() for s in self._running.values()] + list(self._shed.values())

    def stop(self) -> None:
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for sensor in running:
            sensor.stop(timeout=2.0)
