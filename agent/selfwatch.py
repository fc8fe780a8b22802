"""The agent's watchdog: it keeps the agent light on an old classroom PC, in the manner of
osquery's (a worker over its memory or sustained-CPU limit is stopped and restarted), inside
the systemd unit's hard caps (installer/units.py: MemoryMax=512M, CPUQuota=50%).

Every `check_s` it measures, and acts on what stays over a limit for `sustained` checks in a
row (defaults: 3 checks of 20 s, so one minute; a spike is never acted on):

    what                        limit (default)           action
    a sensor's threads          20 % of one core          shed: the supervisor stops it and keeps
                                                          it stopped until the next policy;
                                                          AgentStatus(SENSOR_SHED)
    a per-login helper          150 MB resident           restarted: the service asks it over its
                                                          socket and the helper re-executes
                                                          itself (same pid, fresh memory);
                                                          AgentStatus(HELPER_RESTARTED)
    the service itself          250 MB resident           logged and shown in the heartbeat only:
                                                          the unit's MemoryMax is the hard stop,
                                                          and systemd restarts the service there

Why two layers: systemd's caps cannot say which part misbehaved and can only restart the whole
agent (losing every sensor for a while); the watchdog stops the one part at fault and says so.
The unit's caps stay as the backstop for what the watchdog cannot stop (a Python thread that
never returns, a leak in the service's own code).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from agent.memory import StartupPages, give_back_memory
from agent.sensors import Emit, HelperProcess
from agent.usage import ThreadCpu, rss
from protos import events_pb2

log = logging.getLogger(__name__)

MB = 1024 * 1024


@dataclass(frozen=True)
class WatchdogLimits:
    check_s: float = 20.0  # seconds between checks
    sustained: int = 3  # consecutive checks over a limit before acting
    sensor_cpu_percent: float = 20.0  # of one core, per sensor
    helper_rss_mb: float = 150.0
    service_rss_mb: float = 250.0
    enabled: bool = True

    @property
    def sustained_s(self) -> float:
        return self.check_s * self.sustained


class Strikes:
    """Consecutive checks over a limit, per key; a check under the limit starts again."""

    def __init__(self, needed: int) -> None:
        self._needed = max(1, needed)
        self._count: dict[object, int] = {}

    def record(self, key: object, over: bool) -> bool:
        """Count this check; True once `needed` checks in a row were over (and start again)."""
        if not over:
            self._count.pop(key, None)
            return False
        count = self._count.get(key, 0) + 1
        if count >= self._needed:
            self._count.pop(key, None)
            return True
        self._count[key] = count
        return False

    def keep_only(self, keys: set[object]) -> None:
        """Forget keys no longer measured (a stopped sensor, a helper that logged out)."""
        for key in [k for k in self._count if k not in keys]:
            del self._count[key]


class Sensors(Protocol):
    """What the watchdog needs of the supervisor (agent/supervisor.py's Supervisor)."""

    def threads(self) -> dict[str, set[int]]: ...

    def helpers(self) -> list[HelperProcess]: ...

    def shed(self, name: str, reason: str) -> bool: ...


class Watchdog:
    def __init__(self, limits: WatchdogLimits, sensors: Sensors, emit: Emit,
                 service_pid: int | None = None,
                 pages: StartupPages | None = None) -> None:  # fmt: skip
        import os

        self.limits = limits
        self._sensors = sensors
        self._emit = emit
        self._pid = service_pid if service_pid is not None else os.getpid()
        self._cpu = ThreadCpu()
        self._strikes = Strikes(limits.sustained)
        self._lock = threading.Lock()
        self._last_cpu: dict[str, float] = {}
        self._summary = "not checked yet"
        self._service_over = False
        self.checks = 0
        self._pages = pages or StartupPages()

    def policy_applied(self) -> None:
        """A new policy was fetched and applied: the pages its rare paths ran go again soon."""
        self._pages.again()

    def run(self, stop: threading.Event) -> None:
        log.info("watchdog.started check_s=%g sustained=%d sensor_cpu_percent=%g "
                 "helper_rss_mb=%g service_rss_mb=%g", self.limits.check_s,
                 self.limits.sustained, self.limits.sensor_cpu_percent,
                 self.limits.helper_rss_mb, self.limits.service_rss_mb)  # fmt: skip
        while True:  # the first check sets the CPU baseline
            try:
                self.check()
            except Exception:  # the watchdog must never take the agent down
                log.exception("watchdog.check_failed")
            if stop.wait(self.limits.check_s):
                return

    def check(self) -> None:
        """Measure once and act on whatever has now been over its limit long enough."""
        # Heap freed since the last check back to the OS first: a replaced policy's matcher
        # is let go by its last session only after the new one is compiled (and trimmed),
        # and stayed in RSS (9.5 MB of a first start's 20 MB, measured in one process).
        give_back_memory()
        # And the library pages only start-up ran (gRPC's and cryptography's), once it is over.
        self._pages.check()
        lim = self.limits
        cpu = self._cpu.sample(self._sensors.threads())
        seen: set[object] = set()
        for name, percent in cpu.items():
            seen.add(("sensor", name))
            if self._strikes.record(("sensor", name), percent > lim.sensor_cpu_percent):
                self._shed(name, percent)
        helpers = []
        for helper in self._sensors.helpers():
            used = rss(helper.pid)
            if used is None:
                continue
            key = ("helper", helper.pid)
            seen.add(key)
            helpers.append(f"{helper.account} {used // MB} MB")
            if self._strikes.record(key, used > lim.helper_rss_mb * MB):
                self._restart(helper, used)
        service = rss(self._pid) or 0
        seen.add("service")
        if self._strikes.record("service", service > lim.service_rss_mb * MB):
            self._service_over_limit(service)
        elif service <= lim.service_rss_mb * MB:
            self._service_over = False
        self._strikes.keep_only(seen)
        with self._lock:
            self._last_cpu = cpu
            self._summary = f"service {service // MB} MB" + (
                f"; helpers: {', '.join(helpers)}" if helpers else "")
            self.checks += 1

    def cpu_percent(self, sensor: str) -> float:
        """A sensor's CPU over the last check, % of one core (0 before the second check)."""
        with self._lock:
            return round(self._last_cpu.get(sensor, 0.0), 1)

    def health(self) -> events_pb2.SensorHealth:
        """The watchdog's own line in the heartbeat: what it measured last."""
        with self._lock:
            state = "over_limit" if self._service_over else "running"
            detail = self._summary
        if self._service_over:
            detail = (f"{detail}; over the service's {self.limits.service_rss_mb:g} MB limit "
                      "(the unit's MemoryMax restarts the agent if it keeps growing)")  # fmt: skip
        return events_pb2.SensorHealth(name="watchdog", state=state, detail=detail[:500])

    def _shed(self, name: str, percent: float) -> None:
        lim = self.limits
        reason = (f"used {percent:.0f}% of a CPU core for {lim.sustained_s:g} s (limit "
                  f"{lim.sensor_cpu_percent:g}%)")  # fmt: skip
        stopped = self._sensors.shed(name, f"{reason}; stopped until the next policy")
        log.warning("watchdog.sensor_shed name=%s cpu_percent=%.1f limit=%g stopped=%s",
                    name, percent, lim.sensor_cpu_percent, stopped)  # fmt: skip
        tail = ("" if stopped else "; its thread did not stop and runs on until the agent "
                "restarts (the service's CPUQuota bounds it)")  # fmt: skip
        self._emit(_status(events_pb2.AgentStatus.SENSOR_SHED, "", 2,
                           f"the {name} sensor {reason}: stopped, and not started again until "
                           f"the next policy or an agent restart; nothing is monitored by it "
                           f"until then{tail}"))  # fmt: skip

    def _restart(self, helper: HelperProcess, used: int) -> None:
        lim = self.limits
        reason = (f"{used // MB} MB resident for {lim.sustained_s:g} s (limit "
                  f"{lim.helper_rss_mb:g} MB)")  # fmt: skip
        log.warning("watchdog.helper_restart what=%s account=%s pid=%d rss_mb=%d limit_mb=%g",
                    helper.what, helper.account, helper.pid, used // MB,
                    lim.helper_rss_mb)  # fmt: skip
        helper.restart(reason)
        self._emit(_status(events_pb2.AgentStatus.HELPER_RESTARTED, helper.account, 1,
                           f"the {helper.what} of {helper.account} (pid {helper.pid}) used "
                           f"{reason}: asked to restart itself"))  # fmt: skip

    def _service_over_limit(self, used: int) -> None:
        if not self._service_over:  # once per episode: the heartbeat carries it after
            log.warning("watchdog.service_over_limit rss_mb=%d limit_mb=%g (systemd's MemoryMax "
                        "is the hard stop)", used // MB, self.limits.service_rss_mb)  # fmt: skip
        self._service_over = True


def _status(kind: events_pb2.AgentStatus.Kind.ValueType, account: str, severity: int,
            detail: str) -> events_pb2.Event:  # fmt: skip
    return events_pb2.Event(severity=severity, account=account,
                            status=events_pb2.AgentStatus(kind=kind, detail=detail[:500]))
