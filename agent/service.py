"""The agent's run loop: outbox, shipper thread, sensors, heartbeats, clean shutdown.

run(state) ── holds run.lock ── opens the outbox ── queues AgentStatus(STARTED)
    ├─ policy: the last good bundle on disk (re-verified; a forged one is set aside and
    │  reported as POLICY_REJECTED), then the fetcher thread keeps it current (at start, on a
    │  Welcome naming a newer version, every ~15 min); sensors see a new one at once
    ├─ shipper thread: outbox ══▶ collector (Hello carries our policy version)
    ├─ supervisor: one thread per sensor some profile asks for, restarted within a budget;
    │  emit ─▶ rate cap + coalescing (agent/ratecap.py) ─▶ outbox
    ├─ screenshots: a worker thread captures and seals a detection's window (agent/
    │  screenshots.py) into <state>/evidence/; an uploader thread sends them (PutEvidence)
    ├─ watchdog thread (agent/selfwatch.py): sheds a sensor over its CPU limit, restarts a
    │  helper over its memory limit, each with an AgentStatus; its figures go in the heartbeat
    └─ main thread: a Heartbeat every heartbeat_s until `stop` is set (SIGTERM/SIGINT)
on stop: sensors stop, AgentStatus(STOPPING) is queued, the shipper gets flush_s to ship
what it can, and whatever is left stays in the outbox for next time.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]  # stubs: types-psutil, not in dev yet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import __version__
from agent.clock import AgentClock
from agent.evidence_store import EvidenceStore
from agent.evidence_upload import EvidenceUploader
from agent.full_disk import SpillingPut, open_when_space
from agent.identity import StateDir, load_ca, load_identity, load_key
from agent.matchers_ahead import AFTER_S, MatchersAhead
from agent.notice import NoticeLog
from agent.outbox import DEFAULT_KEEP_ACKED_S, DEFAULT_MAX_KEPT, DEFAULT_MAX_PENDING, Outbox
from agent.policy import ActivePolicy, PolicyHolder
from agent.policy_cache import PolicyCache
from agent.policy_fetch import FetchConfig, PolicyFetcher
from agent.ratecap import RateConfig, RateGate
from agent.screenshots import WAIT_S, Screenshotter
from agent.selfwatch import Watchdog, WatchdogLimits
from agent.semantic import ModelFetcher, SemanticStage
from agent.sensors import SensorContext
from agent.sensors.registry import SENSORS, SensorSettings, SensorSpec
from agent.shipper import Shipper, ShipperConfig
from agent.shipping_state import ShippingState
from agent.supervisor import Supervisor
from agent.transport import quieter_grpc_waits, secure_channel
from protos import events_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    heartbeat_s: float = 60.0
    flush_s: float = 5.0  # on shutdown, how long the shipper may keep shipping
    max_pending: int = DEFAULT_MAX_PENDING
    keep_acked_s: float = DEFAULT_KEEP_ACKED_S  # acknowledged events kept for a restored collector
    max_kept: int = DEFAULT_MAX_KEPT
    policy_interval_s: float = 900.0  # periodic policy check (a Welcome also triggers one)
    policy_retry_s: float = 30.0
    keyboard_socket: Path | None = None  # None: $SAFEGUARD_KEYBOARD_SOCKET or /run/...
    rate: RateConfig = field(default_factory=RateConfig)
    watchdog: WatchdogLimits = field(default_factory=WatchdogLimits)
    ahead_after_s: float = AFTER_S  # a policy's keyboard matchers are made this long after it


def wanted_sensors(active: ActivePolicy) -> set[str]:
    """Every sensor some profile of the policy uses (each sensor then applies per account)."""
    return {name for profile in active.policy.profiles for name in profile.sensors}


def status_event(kind: events_pb2.AgentStatus.Kind.ValueType, detail: str = "") -> events_pb2.Event:
    return events_pb2.Event(status=events_pb2.AgentStatus(kind=kind, detail=detail))


class Service:
    def __init__(
        self,
        state: StateDir,
        config: ServiceConfig,
        sensors: Sequence[SensorSpec] = SENSORS,
    ) -> None:
        self._state = state
        self._config = config
        self._specs = sensors
        self._process = psutil.Process()
        self.holder: PolicyHolder | None = None  # set while running (tests read it)
        self.supervisor: Supervisor | None = None
        self.gate: RateGate | None = None
        self.fetcher: PolicyFetcher | None = None
        self.shipper: Shipper | None = None
        self.semantic: SemanticStage | None = None
        self.clock: AgentClock | None = None
        self.watchdog: Watchdog | None = None
        self.ahead: MatchersAhead | None = None
        self.notices = NoticeLog()  # showings of the monitoring notice, for the heartbeat
        self.screenshots: Screenshotter | None = None
        self.uploader: EvidenceUploader | None = None
        self._shooting = threading.Thread()  # the screenshot worker, once started

    def run(self, stop: threading.Event) -> int:
        """Run until `stop` is set. Raises StateError / OutboxError before anything starts."""
        quieter_grpc_waits()
        state = self._state
        state.require()
        with state.locked("running the agent"):
            ident = load_identity(state)
            key = load_key(state, ident)
            ca_pem = load_ca(state, ident)
            cfg = self._config
            outbox = open_when_space(
                lambda: Outbox.open(state.outbox, ident.agent_id, max_pending=cfg.max_pending,
                                    keep_acked_s=cfg.keep_acked_s, max_kept=cfg.max_kept),
                stop,
            )
            if outbox is None:  # stopped while the disk was full
                return 0
            put = SpillingPut(outbox.put)
            try:
                shipping = ShippingState(state.shipping)
                clock = AgentClock(*(shipping.clock() or ()))  # corrected before a Welcome too
                self.clock = clock
                holder = PolicyHolder(
                    state.policy,
                    Ed25519PublicKey.from_public_bytes(bytes.fromhex(ident.policy_public_key)),
                    clock=clock.now,
                    cache=PolicyCache(state.policy_cache),
                )
                self.holder = holder
                fetcher = PolicyFetcher(
                    holder,
                    put,
                    FetchConfig(
                        address=ident.collector,
                        ca_pem=ca_pem,
                        agent_id=ident.agent_id,
                        interval_s=self._config.policy_interval_s,
                        retry_s=self._config.policy_retry_s,
                    ),
                    key,
                    clock=clock,
                )

                self.fetcher = fetcher

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
                    policy_version=lambda: str(holder.version),
                    on_policy_version=fetcher.announce,
                    clock=clock,
                    state=shipping,
                )
                self.shipper = shipper
                self._serve(stop, outbox, put, shipper, holder, fetcher)
            finally:
                outbox.close()
        return 0

    def _serve(self, stop: threading.Event, outbox: Outbox, put: SpillingPut, shipper: Shipper,
               holder: PolicyHolder, fetcher: PolicyFetcher) -> None:  # fmt: skip
        put(status_event(events_pb2.AgentStatus.STARTED, f"agent {__version__}"))
        if holder.load_error:
            put(status_event(events_pb2.AgentStatus.POLICY_REJECTED, holder.load_error))
        shipping = threading.Thread(target=shipper.run, name="shipper", daemon=True)
        shipping.start()
        fetching = threading.Thread(target=fetcher.run, name="policy-fetch", daemon=True)
        fetching.start()
        self.gate = gate = RateGate(put, self._config.rate)
        stage, models = self._semantic(put, holder, fetcher)
        shots, uploader = self._evidence(gate, put, holder, fetcher)
        ctx = SensorContext(emit=gate, policy=holder.current, state_dir=self._state.root,
                            semantic=lambda profile: stage.judge_for(holder.current(), profile),
                            notices=self.notices, screenshots=shots)
        settings = SensorSettings(self._state.root, self._config.keyboard_socket)
        self.supervisor = supervisor = Supervisor(self._specs, ctx, settings)
        holder.subscribe(lambda active: supervisor.apply(wanted_sensors(active)))
        supervisor.apply(wanted_sensors(holder.current()))
        # A login after a new policy then reads its matcher back instead of waiting for it.
        self.ahead = ahead = MatchersAhead(self._config.ahead_after_s)
        holder.subscribe(ahead.want)
        ahead.want(holder.current())
        stop_watching = threading.Event()
        if self._config.watchdog.enabled:
            # Its statuses go straight to the outbox: the rate cap is for detections.
            self.watchdog = dog = Watchdog(self._config.watchdog, supervisor, put)
            holder.subscribe(lambda active: dog.policy_applied())
            watchdog = threading.Thread(target=self.watchdog.run, args=(stop_watching,),
                                        name="watchdog", daemon=True)  # fmt: skip
            watchdog.start()
        log.info(
            "agent.started agent=%s collector=%s policy_version=%d heartbeat_s=%g",
            shipper.config.agent_id,
            shipper.config.address,
            holder.version,
            self._config.heartbeat_s,
        )
        self._process.cpu_percent(None)  # primes the counter; later calls measure since
        try:
            while not stop.wait(self._config.heartbeat_s):
                try:
                    put.drain()
                    gate.flush()
                    shots.flush()
                    put(self._heartbeat(outbox, supervisor, holder))
                except sqlite3.Error as exc:  # keep running, try next beat
                    log.error("heartbeat.not_recorded detail=%s", exc)
        finally:
            log.info("agent.stopping flush_s=%.1f", self._config.flush_s)
            stop_watching.set()  # before the sensors stop: stopping is not shedding
            fetcher.stop()
            models.stop()
            ahead.stop()
            supervisor.stop()
            shots.stop()  # what waits for a picture is emitted without one ...
            uploader.stop()
            self._shooting.join(WAIT_S + 10)  # ... before STOPPING, and while the outbox is open
            gate.flush()
            shots.flush()
            put(status_event(events_pb2.AgentStatus.STOPPING))
            if put.drain():
                log.error("agent.stopping_with_events_in_memory count=%d: the PC's disk is "
                          "still full; they are lost", put.waiting)  # fmt: skip
            shipper.stop(flush_s=self._config.flush_s)
            shipping.join(timeout=self._config.flush_s + 30)
            if shipping.is_alive():
                log.error("agent.shipper_stuck (exiting anyway; events stay in the outbox)")
            counts = outbox.counts()
            log.info(
                "agent.stopped left_pending=%d left_unacked=%d", counts.pending, counts.unacked
            )

    def _semantic(self, put: SpillingPut, holder: PolicyHolder,
                  policies: PolicyFetcher) -> tuple[SemanticStage, ModelFetcher]:  # fmt: skip
        """The semantic stage, and the thread that fetches the model each policy names."""
        self.semantic = stage = SemanticStage(self._state.root / "models", put)
        cfg = policies.config
        models = ModelFetcher(stage, put, cfg.address, cfg.ca_pem, cfg.agent_id,
                              policies.key, holder.current, clock=policies.clock)  # fmt: skip
        holder.subscribe(lambda active: models.want(stage.wanted(active)))
        models.want(stage.wanted(holder.current()))
        threading.Thread(target=models.run, name="model-fetch", daemon=True).start()
        return stage, models

    def _evidence(self, gate: RateGate, put: SpillingPut, holder: PolicyHolder,
                  policies: PolicyFetcher) -> tuple[Screenshotter, EvidenceUploader]:  # fmt: skip
        """Screenshot evidence: the worker that takes pictures, and the thread that uploads
        them on a connection of its own (never in the event stream)."""
        cfg = policies.config
        store = EvidenceStore(self._state.root / "evidence")
        self.uploader = uploader = EvidenceUploader(
            store, policies.key, cfg.agent_id, lambda: secure_channel(cfg.address, cfg.ca_pem),
            clock=policies.clock)  # fmt: skip
        self.screenshots = shots = Screenshotter(store, cfg.agent_id, holder.current, gate, put,
                                                 on_kept=uploader.wake)  # fmt: skip
        self._shooting = threading.Thread(target=shots.run, name="screenshots", daemon=True)
        self._shooting.start()
        threading.Thread(target=uploader.run, name="evidence-upload", daemon=True).start()
        return shots, uploader

    def _heartbeat(self, outbox: Outbox, supervisor: Supervisor,
                   holder: PolicyHolder) -> events_pb2.Event:  # fmt: skip
        counts = outbox.counts()
        sensors = supervisor.health()
        if self.watchdog is not None:
            for sensor in sensors:
                sensor.cpu_percent = self.watchdog.cpu_percent(sensor.name)
            sensors.append(self.watchdog.health())
        shown = self.notices.latest()
        return events_pb2.Event(
            heartbeat=events_pb2.Heartbeat(
                sensors=sensors,
                policy_version=str(holder.version),
                outbox_pending=counts.pending + counts.unacked,
                cpu_percent=self._process.cpu_percent(None),
                rss_bytes=self._process.memory_info().rss,
                agent_version=__version__,
                notice_shown_unix_ms=shown.shown_unix_ms if shown else 0,
                notice_version=shown.version if shown else "",
            )
        )
