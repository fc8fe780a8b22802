"""The shipper: one gRPC stream to the collector, carrying signed batches out of the outbox.

    agent                                   collector
    Hello(agent_id, version, host)   ──▶
                                     ◀──    Challenge(nonce)
    Proof(Ed25519 over agent_id, nonce)   ──▶
                                     ◀──    Welcome(nonce, last_seq, head_hash)
    (outbox.resume: forget what it already has, or adopt its head in a fresh outbox)
    Batch(first_seq, prev_hash, events, head_hash, signature)   ──▶   (a few in flight)
                                     ◀──    Ack(last_seq) | Reject(reason, detail), in order

Events leave the outbox only on an Ack (the collector acks after commit), so a dropped
connection at any point just means: reconnect, read the Welcome, re-send the same bytes.
"""

from __future__ import annotations

import logging
import queue
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.clock import AgentClock
from agent.outbox import Outbox, OutboxError
from agent.shipping_state import ShippingState
from agent.tls_explain import explain_tls
from agent.transport import MAX_MESSAGE_BYTES, secure_channel
from protos import envelope, ingest_pb2, ingest_pb2_grpc
from protos.skew import describe

log = logging.getLogger(__name__)

_Response = ingest_pb2.CollectorMessage | grpc.RpcError | None  # None: the stream ended


@dataclass(frozen=True)
class ShipperConfig:
    address: str
    ca_pem: bytes
    agent_id: str
    agent_version: str
    hostname: str
    policy_version: str = ""
    batch_events: int = 500
    batch_bytes: int = MAX_MESSAGE_BYTES * 3 // 4  # room for the batch's own fields
    max_in_flight: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    refused_retry_s: float = 300.0  # unknown or revoked agent: keep events, ask rarely
    welcome_timeout_s: float = 30.0
    ack_timeout_s: float = 60.0
    poll_s: float = 0.2  # how often the wait for a session's Welcome looks again
    other_process_s: float = 1.0  # how soon an event put by another process is noticed
    idle_wait_s: float = 5.0  # the longest sleep with nothing to do: a put or a reply wakes it


class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**n))."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311  # jitter spreads retries; not secret

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.failures, 32))
        self.failures += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.failures = 0

    def slow(self, seconds: float) -> float:
        """For refusals that will not clear soon: between half of `seconds` and all of it."""
        return self._rng.uniform(seconds / 2, seconds)


class SessionEnded(Exception):
    """Why a stream ended, and how long to wait before the next one (None: usual backoff)."""

    def __init__(self, why: str, retry_after_s: float | None = None) -> None:
        super().__init__(why)
        self.retry_after_s = retry_after_s


@dataclass
class _InFlight:
    first_seq: int
    last_seq: int
    sent_at: float


class Shipper:
    def __init__(
        self,
        outbox: Outbox,
        key: Ed25519PrivateKey,
        config: ShipperConfig,
        policy_version: Callable[[], str] | None = None,
        on_policy_version: Callable[[str], None] | None = None,
        clock: AgentClock | None = None,
        state: ShippingState | None = None,
    ) -> None:
        """policy_version: what Hello reports (default: config.policy_version);
        on_policy_version: told the collector's newest published policy version, from each
        Welcome and each ack (the policy fetcher fetches when it is newer than its own);
        clock: given the skew each Welcome reports (agent/clock.py);
        state: told each failure and each opened session, for `safeguard-agent status`."""
        self.clock = clock or AgentClock()
        self._state = state
        self._policy_version = policy_version or (lambda: config.policy_version)
        self._on_policy_version = on_policy_version
        self._outbox = outbox
        self._key = key
        self._cfg = config
        self.config = config
        self._stop = threading.Event()
        self._flush_until = 0.0
        self.backoff = Backoff(config.backoff_base_s, config.backoff_cap_s)
        self.acked_batches = 0
        self.connected = False  # a Welcome has come on the current stream
        self.sessions = 0  # streams that got as far as a Welcome

    def stop(self, flush_s: float = 0.0) -> None:
        """Ask run() to return: at once, or after up to flush_s shipping what is queued."""
        self._flush_until = time.monotonic() + flush_s
        self._stop.set()
        self._outbox.wake()

    def run(self) -> None:
        """Ship until stop(): reconnect with backoff after every failure."""
        while not self._stop.is_set():
            try:
                self._session()
                return  # only a stop ends a session without an exception
            except SessionEnded as ended:
                delay, why = ended.retry_after_s, str(ended)
            except (OutboxError, sqlite3.Error, envelope.EnvelopeError) as exc:
                # A full disk or a collector's malformed Welcome: keep the events, try later.
                log.error("ship.error kind=%s detail=%s", type(exc).__name__, exc)
                delay, why = None, type(exc).__name__
            except Exception as exc:  # a bug must not stop shipping for good; the log has it
                log.exception("ship.unexpected kind=%s", type(exc).__name__)
                delay, why = None, type(exc).__name__
            if delay is None:
                delay = self.backoff.next_delay()
            if self._state is not None and not self._stop.is_set():
                self._state.error(why, _wall_ms())
            log.info("ship.retry in_s=%.1f why=%s", delay, why)
            self._stop.wait(delay)

    # -- one stream -----------------------------------------------------------------------

    def _session(self) -> None:
        cfg = self._cfg
        sends: queue.SimpleQueue[ingest_pb2.AgentMessage | None] = queue.SimpleQueue()
        responses: queue.SimpleQueue[_Response] = queue.SimpleQueue()
        hello = ingest_pb2.AgentMessage(
            hello=ingest_pb2.Hello(
                agent_id=cfg.agent_id,
                agent_version=cfg.agent_version,
                hostname=cfg.hostname,
                policy_version=self._policy_version(),
            )
        )

        if self._state is not None:  # the collector's chains must still reach what we saw
            hello.hello.witnessed_checkpoint = self._state.witnessed()

        def requests() -> Iterator[ingest_pb2.AgentMessage]:
            hello.hello.unix_ms = _wall_ms()  # the PC's own clock, as it goes: the collector
            yield hello  # measures the skew against it (never the corrected clock)
            while (message := sends.get()) is not None:
                yield message

        with secure_channel(cfg.address, cfg.ca_pem) as channel:
            call = ingest_pb2_grpc.CollectorStub(channel).Ship(requests())

            def read() -> None:
                try:
                    for message in call:
                        responses.put(message)
                        self._outbox.wake()
                    responses.put(None)
                except grpc.RpcError as exc:
                    responses.put(exc)
                self._outbox.wake()

            reader = threading.Thread(target=read, name="shipper-reader", daemon=True)
            reader.start()
            try:
                self._converse(responses, sends)
            finally:
                self.connected = False
                sends.put(None)
                call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves cancel untyped
                reader.join(timeout=5)

    def _converse(
        self,
        responses: queue.SimpleQueue[_Response],
        sends: queue.SimpleQueue[ingest_pb2.AgentMessage | None],
    ) -> None:
        cfg = self._cfg
        challenge = self._await(responses, "challenge").challenge
        proof = self._key.sign(envelope.hello_proof_payload(cfg.agent_id, challenge.nonce))
        sends.put(ingest_pb2.AgentMessage(proof=ingest_pb2.Proof(signature=proof)))
        welcome = self._await(responses, "welcome").welcome
        self._outbox.resume(welcome.last_seq, welcome.head_hash)
        self._clock_measured(welcome)
        if self._on_policy_version is not None:
            self._on_policy_version(welcome.policy_version)
        self.connected = True
        self.sessions += 1
        counts = self._outbox.counts()
        assert counts.base is not None  # resume() always sets it
        sent_up_to = counts.base[0]
        log.info(
            "ship.connected agent=%s collector=%s last_seq=%d pending=%d unacked=%d",
            cfg.agent_id,
            cfg.address,
            welcome.last_seq,
            counts.pending,
            counts.unacked,
        )
        in_flight: deque[_InFlight] = deque()
        while True:
            while len(in_flight) < cfg.max_in_flight and not self._past_flush():
                prev, rows = self._outbox.chained_after(
                    sent_up_to, cfg.batch_events, cfg.batch_bytes
                )
                if not rows:
                    if self._outbox.chain_pending(cfg.batch_events):
                        continue
                    break
                batch = envelope.make_batch(
                    self._key,
                    cfg.agent_id,
                    welcome.nonce,
                    rows[0].seq,
                    prev,
                    [r.raw for r in rows],
                    [r.hash for r in rows],
                )
                sends.put(ingest_pb2.AgentMessage(batch=batch))
                in_flight.append(_InFlight(rows[0].seq, rows[-1].seq, time.monotonic()))
                sent_up_to = rows[-1].seq
            if self._stop.is_set() and (not in_flight or self._past_flush()):
                return
            handled = self._drain(responses, in_flight)
            if in_flight and time.monotonic() - in_flight[0].sent_at > cfg.ack_timeout_s:
                raise SessionEnded(f"no ack for seq {in_flight[0].first_seq} in time")
            if not handled:
                # A put in this process, a reply (the reader wakes the outbox) or stop() ends
                # the wait at once; an idle PC's shipper otherwise wakes every 5 s, not 5 times
                # a second (a third of the idle agent's CPU went on those turns of this loop).
                wait = cfg.idle_wait_s
                if in_flight:
                    wait = min(wait, in_flight[0].sent_at + cfg.ack_timeout_s - time.monotonic())
                self._outbox.wait_for_work(max(wait, 0.0), poll=cfg.other_process_s)

    def _clock_measured(self, welcome: ingest_pb2.Welcome) -> None:
        """Take the skew the collector measured; say so once per session when it is beyond
        the collector's limit (the collector flags this PC's events meanwhile)."""
        skew = welcome.clock_skew_ms if welcome.clock_measured else None
        limit = welcome.clock_skew_limit_ms or self.clock.limit_ms
        if skew is not None:
            self.clock.measured(skew, limit)
            if self.clock.skewed:
                log.warning("clock.skewed skew_s=%d limit_s=%d (this PC's clock is %s of the "
                            "collector's: set the PC's clock / NTP; its events are flagged and "
                            "exemptions are judged by the collector's time)", skew // 1000,
                            limit // 1000, describe(skew))  # fmt: skip
        if self._state is not None:
            self._state.session(_wall_ms(), skew, limit)
            if welcome.checkpoint:
                self._state.witness(welcome.checkpoint)

    def _past_flush(self) -> bool:
        return self._stop.is_set() and time.monotonic() >= self._flush_until

    def _await(
        self, responses: queue.SimpleQueue[_Response], kind: str
    ) -> ingest_pb2.CollectorMessage:
        """The collector's next message, which must be of this kind (opening the stream)."""
        deadline = time.monotonic() + self._cfg.welcome_timeout_s
        while time.monotonic() < deadline:
            if self._stop.is_set():
                raise SessionEnded("stopping before the collector answered", retry_after_s=0)
            try:
                message = responses.get(timeout=self._cfg.poll_s)
            except queue.Empty:
                continue
            message = self._check(message)
            if message.WhichOneof("msg") != kind:
                raise SessionEnded(f"protocol: expected {kind}, got {message.WhichOneof('msg')}")
            return message
        raise SessionEnded(f"the collector sent no {kind} in time")

    def _drain(self, responses: queue.SimpleQueue[_Response], in_flight: deque[_InFlight]) -> bool:
        handled = False
        while True:
            try:
                message = self._check(responses.get_nowait())
            except queue.Empty:
                return handled
            handled = True
            kind = message.WhichOneof("msg")
            if not in_flight or kind not in ("ack", "reject"):
                raise SessionEnded(f"protocol: unexpected {kind} from the collector")
            batch = in_flight.popleft()
            if kind == "reject":
                log.error(
                    "batch.rejected first=%d last=%d reason=%s detail=%s",
                    batch.first_seq,
                    batch.last_seq,
                    message.reject.reason,
                    message.reject.detail,
                )
                # The same bytes would be refused again until someone acts on the collector
                # (each refusal is a tampering record there): keep them, and ask rarely.
                raise SessionEnded(
                    f"batch rejected: {message.reject.reason}",
                    retry_after_s=self.backoff.slow(self._cfg.refused_retry_s),
                )
            ack = message.ack
            if ack.last_seq < batch.last_seq:
                log.warning("batch.ack_short expected=%d got=%d", batch.last_seq, ack.last_seq)
                self._outbox.ack(ack.last_seq)
                raise SessionEnded("ack out of step; resynchronising", retry_after_s=0)
            # A duplicate's ack names the collector's head, which may be past this batch;
            # later batches in flight get their own acks.
            self._outbox.ack(batch.last_seq)
            if ack.policy_version and self._on_policy_version is not None:
                self._on_policy_version(ack.policy_version)
            self.backoff.reset()
            self.acked_batches += 1
            log.debug(
                "batch.acked first=%d last=%d duplicate=%s",
                batch.first_seq,
                ack.last_seq,
                ack.duplicate,
            )

    def _check(self, message: _Response) -> ingest_pb2.CollectorMessage:
        """Turn the end of the stream into SessionEnded with a clear reason."""
        if message is None:
            raise SessionEnded("the collector closed the stream")
        if isinstance(message, ingest_pb2.CollectorMessage):
            return message
        code, details = message.code(), message.details() or ""
        slow = self.backoff.slow(self._cfg.refused_retry_s)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            log.error(
                "ship.unknown_agent agent=%s detail=%s (re-enrol this PC; events are kept)",
                self._cfg.agent_id,
                details,
            )
            raise SessionEnded("collector does not know this agent", retry_after_s=slow)
        if code == grpc.StatusCode.PERMISSION_DENIED:
            log.error(
                "ship.revoked agent=%s detail=%s (events are kept)", self._cfg.agent_id, details
            )
            raise SessionEnded("agent revoked", retry_after_s=slow)
        unavailable = code == grpc.StatusCode.UNAVAILABLE
        tls = explain_tls(details, self._cfg.address) if unavailable else None
        if tls is not None:  # retried as usual, but logged as the error it is, with its cause
            log.error("ship.tls_failed collector=%s why=%r detail=%s", self._cfg.address, tls,
                      details)  # fmt: skip
            raise SessionEnded(f"TLS: {tls}")
        if code == grpc.StatusCode.UNAVAILABLE:
            log.warning("ship.unavailable collector=%s detail=%s", self._cfg.address, details)
            raise SessionEnded(f"the collector at {self._cfg.address} is unavailable: "
                               f"{details[:300]}")  # fmt: skip
        if code != grpc.StatusCode.CANCELLED or not self._stop.is_set():
            log.error("ship.failed code=%s detail=%s", code.name if code else "?", details)
        raise SessionEnded(f"stream ended: {code.name if code else '?'} {details[:300]}".strip())


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
