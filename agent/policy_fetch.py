"""Fetching signed policy bundles from the collector and applying them live.

    fetch ─┬─ PolicyBundle(version, bundle) ─▶ PolicyHolder.apply ─▶ AgentStatus(POLICY_APPLIED)
           │                                      └ refused ─────▶ AgentStatus(POLICY_REJECTED)
           ├─ empty bundle: nothing newer, keep what we have
           └─ collector unreachable: keep the last good policy, try again later
    wake-ups: every `interval_s` (with jitter), and at once when a Welcome or an ack names a
    newer version.

The holder verifies the signature with the policy key pinned at enrolment and refuses anything
not newer than what it has, so a fetch can never lower or forge the policy in force.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.clock import AgentClock
from agent.policy import PolicyHolder
from agent.transport import rpc_code, rpc_detail, secure_channel
from protos import envelope, events_pb2, ingest_pb2, ingest_pb2_grpc
from rules.schema import PolicyError

log = logging.getLogger(__name__)

Emit = Callable[[events_pb2.Event], object]


@dataclass(frozen=True)
class FetchConfig:
    address: str
    ca_pem: bytes
    agent_id: str
    interval_s: float = 900.0  # a periodic check, in case a Welcome was missed
    jitter: float = 0.2  # +-20 %: a room of PCs does not ask in the same second
    retry_s: float = 30.0  # after a failed fetch
    timeout_s: float = 30.0


def status(kind: events_pb2.AgentStatus.Kind.ValueType, detail: str) -> events_pb2.Event:
    return events_pb2.Event(status=events_pb2.AgentStatus(kind=kind, detail=detail))


def newer(offered: str, have: int) -> bool:
    """Whether a version the collector announces (decimal text) is newer than ours."""
    return offered.isdigit() and int(offered) > have


def signed_request(agent_id: str, key: Ed25519PrivateKey, have: int,
                   unix_ms: int) -> ingest_pb2.PolicyRequest:  # fmt: skip
    """A FetchPolicy request: only an enrolled agent, by its key, reads the policy."""
    signature = key.sign(envelope.policy_request_payload(agent_id, str(have), unix_ms))
    return ingest_pb2.PolicyRequest(agent_id=agent_id, have_version=str(have), unix_ms=unix_ms,
                                    signature=signature)  # fmt: skip


def fetch_bundle(address: str, ca_pem: bytes, request: ingest_pb2.PolicyRequest,
                 timeout: float) -> ingest_pb2.PolicyBundle:  # fmt: skip
    """One FetchPolicy call (raises grpc.RpcError)."""
    with secure_channel(address, ca_pem) as channel:
        return ingest_pb2_grpc.CollectorStub(channel).FetchPolicy(request, timeout=timeout)


class PolicyFetcher:
    """Keeps the holder's policy current; every outcome is an AgentStatus for the DSL."""

    def __init__(
        self, holder: PolicyHolder, emit: Emit, config: FetchConfig, key: Ed25519PrivateKey,
        clock: AgentClock | None = None,
    ) -> None:
        """clock: the time a request is signed with is the PC's clock corrected by the skew
        the collector measured, which refuses a request more than 15 minutes from its own."""
        self.clock = clock or AgentClock()
        self._holder = holder
        self.key = key  # requests are signed: only enrolled agents read the policy
        self._emit = emit
        self.config = config
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._rng = random.Random()  # noqa: S311  # jitter spreads fetches; not secret
        self.fetches = 0
        self.last_error: str | None = None
        self._announced = ""  # every ack names the version: wake once per new one

    def announce(self, version: str) -> None:
        """A Welcome or an ack named the collector's newest version: fetch soon if newer."""
        if version != self._announced and newer(version, self._holder.version):
            self._announced = version
            log.info("policy.announced version=%s have=%d", version, self._holder.version)
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        """Fetch at once, then on announcements and periodically, until stop()."""
        while not self._stop.is_set():
            ok = self.fetch_once()
            wait = self.config.interval_s if ok else self.config.retry_s
            wait *= 1 + self._rng.uniform(-self.config.jitter, self.config.jitter)
            self._wake.wait(wait)
            self._wake.clear()

    def fetch_once(self) -> bool:
        """One FetchPolicy call. False if the collector could not be asked (retry sooner)."""
        self.fetches += 1
        have = self._holder.version
        request = signed_request(self.config.agent_id, self.key, have, self.clock.unix_ms())
        try:
            answer = fetch_bundle(self.config.address, self.config.ca_pem, request,
                                  self.config.timeout_s)  # fmt: skip
        except grpc.RpcError as exc:
            self.last_error, detail = rpc_code(exc), rpc_detail(exc)
            log.warning(
                "policy.fetch_failed code=%s detail=%r keeping_version=%d",
                self.last_error, detail, have,
            )  # fmt: skip
            return False
        self.last_error = None
        if not answer.bundle:
            log.debug("policy.current version=%d", have)
            return True
        self.offer(answer)
        return True

    def offer(self, answer: ingest_pb2.PolicyBundle) -> bool:
        """Apply a bundle the collector sent. Refusals are reported, never raised."""
        try:
            active = self._holder.apply(answer.bundle)
        except PolicyError as exc:  # BundleError is one: forged, corrupt, or not newer
            log.error(
                "policy.rejected offered=%s have=%d reason=%s",
                answer.version or "?",
                self._holder.version,
                exc,
            )
            detail = f"version {answer.version or '?'}: {exc}"
            self._emit(status(events_pb2.AgentStatus.POLICY_REJECTED, detail[:500]))
            return False
        self._emit(status(events_pb2.AgentStatus.POLICY_APPLIED, str(active.version)))
        return True
