"""The agent's run loop: outbox, shipper thread, sensors, heartbeats, clean shutdown.

run(state) ── holds run.lock ── opens the outbox ── queues AgentStatus(STARTED)
    ├─ shipper thread: outbox ══▶ collector
    ├─ one thread per registered sensor: emit ─▶ outbox
    └─ main thread: a Heartbeat every heartbeat_s until `stop` is set (SIGTERM/SIGINT)
on stop: sensors stop, AgentStatus(STOPPING) is queued, the shipper gets flush_s to ship
what it can, and whatever is left stays in the outbox for next time.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped,unused-ignore]  # stubs: types-psutil, not in dev yet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import __version__
from agent.identity import StateDir, load_ca, load_identity, load_key
from agent.outbox import DEFAULT_MAX_PENDING, Outbox
from agent.policy import PolicyHolder
from agent.sensors import Sensor, SensorContext
from agent.sensors.registry import SENSORS
from agent.shipper import Shipper, ShipperConfig
from protos import events_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    heartbeat_s: float = 60.0
    flush_s: float = 5.0  # on shutdown, how long the shipper may keep shipping
    max_pending: int = DEFAULT_MAX_PENDING


class _SensorThread:
    """Runs one sensor and remembers its health for the heartbeat."""

    def __init__(self, sensor: Sensor, ctx: SensorContext) -> None:
        self.sensor = sensor
        self.state = "running"
        self.detail = ""
        self._ctx = ctx
        self._thread = threading.Thread(target=self._run, name=f"sensor-{sensor.name}")
        self._thread.daemon = True
        self._thread.start()

    def _run(self) -> None:
        try:
            self.sensor.run(self._ctx)
            self.state = "stopped"
        except Exception as exc:  # a sensor fault must not take the agent down
            log.exception("sensor.crashed name=%s", self.sensor.name)
            self.state, self.detail = "crashed", type(exc).__name__

    def stop(self, timeout: float) -> None:
        self.sensor.stop()
        self._thread.join(timeout)

    def health(self) -> events_pb2.SensorHealth:
        return events_pb2.SensorHealth(name=self.sensor.name, state=self.state, detail=self.detail)


def status_event(kind: events_pb2.AgentStatus.Kind.ValueType, detail: str = "") -> events_pb2.Event:
    return events_pb2.Event(status=events_pb2.AgentStatus(kind=kind, detail=detail))


class Service:
    def __init__(
        self,
        state: StateDir,
        config: ServiceConfig,
        sensors: Sequence[Callable[[], Sensor]] = SENSORS,
    ) -> None:
        self._state = state
        self._config = config
        self._sensor_factories = sensors
        self._process = psutil.Process()

    def run(self, stop: threading.Event) -> int:
        """Run until `stop` is set. Raises StateError / OutboxError before anything starts."""
        state = self._state
        state.require()
        with state.locked("running the agent"):
            ident = load_identity(state)
            key = load_key(state, ident)
            ca_pem = load_ca(state, ident)
            outbox = Outbox.open(state.outbox, ident.agent_id, max_pending=self._config.max_pending)
            try:
                shipper = Shipper(
                    outbox,
                    key,
                    ShipperConfig(
                        address=ident.collector,
                        ca_pem=ca_pem,
                        agent_id=ident.agent_id,
                        agent_version=__version__,
                        hostname=socket.gethostname(),
                    ),
                )
                self._serve(stop, outbox, shipper)
            finally:
                outbox.close()
        return 0

    def _serve(self, stop: threading.Event, outbox: Outbox, shipper: Shipper) -> None:
        outbox.put(status_event(events_pb2.AgentStatus.STARTED, f"agent {__version__}"))
        shipping = threading.Thread(target=shipper.run, name="shipper", daemon=True)
        shipping.start()
        ident = load_identity(self._state)
        holder = PolicyHolder(
            self._state.root / "policy.json",
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(ident.policy_public_key)),
        )
        ctx = SensorContext(emit=outbox.put, policy=holder.current)
        sensors = [_SensorThread(make(), ctx) for make in self._sensor_factories]
        log.info(
            "agent.started agent=%s collector=%s sensors=%d heartbeat_s=%g",
            shipper.config.agent_id,
            shipper.config.address,
            len(sensors),
            self._config.heartbeat_s,
        )
        self._process.cpu_percent(None)  # primes the counter; later calls measure since
        try:
            while not stop.wait(self._config.heartbeat_s):
                try:
                    outbox.put(self._heartbeat(outbox, sensors))
                except sqlite3.Error as exc:  # e.g. a full disk: keep running, try next beat
                    log.error("heartbeat.not_recorded detail=%s", exc)
        finally:
            log.info("agent.stopping flush_s=%.1f", self._config.flush_s)
            for sensor in sensors:
                sensor.stop(timeout=2.0)
            outbox.put(status_event(events_pb2.AgentStatus.STOPPING))
            shipper.stop(flush_s=self._config.flush_s)
            shipping.join(timeout=self._config.flush_s + 30)
            if shipping.is_alive():
                log.error("agent.shipper_stuck (exiting anyway; events stay in the outbox)")
            counts = outbox.counts()
            log.info(
                "agent.stopped left_pending=%d left_unacked=%d", counts.pending, counts.unacked
            )

    def _heartbeat(self, outbox: Outbox, sensors: list[_SensorThread]) -> events_pb2.Event:
        counts = outbox.counts()
        return events_pb2.Event(
            heartbeat=events_pb2.Heartbeat(
                sensors=[s.health() for s in sensors],
                outbox_pending=counts.pending + counts.unacked,
                cpu_percent=self._process.cpu_percent(None),
                rss_bytes=self._process.memory_info().rss,
                agent_version=__version__,
            )
        )
