"""Enrolment: generate this PC's key, present it with a token, and only then write the state.

The order makes a failed enrolment leave nothing behind: the key lives in memory until the
collector has accepted it, and identity.json (which makes a folder "enrolled") is written last.
Just before it, the school's current policy bundle is fetched and kept as the last good one
(its signature checked against the policy key the collector just gave): the service's first
start then monitors by the school's policy from the first key, and never loads the shipped
lists only to replace them a minute later (which left the service about 10 MB larger until
it restarted: bench/results/agent.md). If that fetch fails, the service fetches it as ever.
The collector answers refusals as gRPC PERMISSION_DENIED with a plain-English reason, and is
UNAVAILABLE when down or when its certificate does not chain to the pinned CA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import platform
import socket
from dataclasses import asdict
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent import __version__
from agent.identity import (
    AGENT_ID,
    Identity,
    StateDir,
    StateError,
    check_ca,
    load_identity,
    raw_public_key,
    write_atomic,
)
from agent.policy_fetch import fetch_bundle, signed_request
from agent.transport import parse_address, rpc_code, secure_channel
from protos import envelope, ingest_pb2, ingest_pb2_grpc
from rules.bundle import BundleError, signed_payload

log = logging.getLogger(__name__)

ENROL_TIMEOUT_S = 20.0


class EnrolError(Exception):
    """The collector refused enrolment or could not be reached. `retryable` for the latter."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def enrol(
    state: StateDir,
    address: str,
    token: str,
    ca_pem: bytes,
    *,
    force: bool = False,
    timeout: float = ENROL_TIMEOUT_S,
) -> Identity:
    """Enrol with the collector at `address`, pinning `ca_pem`; returns the new identity."""
    address = parse_address(address)
    token = token.strip()
    if not token:
        raise StateError("the enrolment token is empty")
    check_ca(ca_pem, "the CA")
    created = not state.root.exists()
    state.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.root.chmod(0o700)
    try:
        with state.locked("enrolling"):
            return _enrol_locked(state, address, token, ca_pem, force, timeout)
    except BaseException:
        if created:  # leave no trace of a failed first enrolment
            state.lock_file.unlink(missing_ok=True)
            if not any(state.root.iterdir()):
                state.root.rmdir()
        raise


def _enrol_locked(
    state: StateDir, address: str, token: str, ca_pem: bytes, force: bool, timeout: float
) -> Identity:
    old_agent = _enrolled_agent(state)
    if old_agent is not None and not force:
        raise StateError(
            f"{state.root} is already enrolled as {old_agent}; use --force to enrol again"
        )
    key = Ed25519PrivateKey.generate()
    public = raw_public_key(key)
    request = ingest_pb2.EnrolRequest(
        token=token,
        public_key=public,
        proof=key.sign(envelope.enrol_proof_payload(token, public)),
        hostname=socket.gethostname(),
        os=platform.platform(),
        agent_version=__version__,
    )
    with secure_channel(address, ca_pem) as channel:
        try:
            reply = ingest_pb2_grpc.CollectorStub(channel).Enrol(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise _rpc_error(exc, address) from None
    if not AGENT_ID.fullmatch(reply.agent_id) or len(reply.policy_public_key) != 32:
        raise EnrolError("the collector's enrolment answer is malformed (agent id, policy key)")
    ident = Identity(
        agent_id=reply.agent_id,
        collector=address,
        collector_id=reply.collector_id,
        public_key=public.hex(),
        policy_public_key=reply.policy_public_key.hex(),
        ca_sha256=hashlib.sha256(ca_pem).hexdigest(),
        enrolled_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        hostname=request.hostname,
    )
    if old_agent is not None:
        kept = _set_outbox_aside(state, old_agent)
        if kept is not None:
            log.warning("enrol.outbox_set_aside old_agent=%s path=%s", old_agent, kept)
        # The old collector's policy: signed with another key, it would be refused at start
        # and reported as tampering if the new collector has none to give yet.
        state.policy.unlink(missing_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(state.key, pem, 0o600)
    write_atomic(state.ca, ca_pem, 0o644)
    _keep_school_policy(state, ident, ca_pem, key, timeout)
    write_atomic(state.identity, json.dumps(asdict(ident), indent=2).encode() + b"\n", 0o600)
    log.info("enrol.done agent=%s collector=%s", ident.agent_id, address)
    return ident


def _keep_school_policy(state: StateDir, ident: Identity, ca_pem: bytes, key: Ed25519PrivateKey,
                        timeout: float) -> None:  # fmt: skip
    """Fetch the collector's current policy bundle and keep it as the last good one (the
    service loads it, checking it in full, at start). Any failure only leaves it to the
    service: a collector with no policy published, a clock far off, a bundle that does not
    verify (never written)."""
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    request = signed_request(ident.agent_id, key, 0, now_ms)
    try:
        answer = fetch_bundle(ident.collector, ca_pem, request, timeout)
    except grpc.RpcError as exc:
        log.warning("enrol.policy_not_fetched reason=%s (the service will fetch it)",
                    rpc_code(exc))  # fmt: skip
        return
    if not answer.bundle:  # nothing published yet: the service starts with the shipped lists
        return
    policy_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(ident.policy_public_key))
    try:
        signed_payload(answer.bundle, policy_key)
    except BundleError as exc:
        log.warning("enrol.policy_not_kept reason=%s (the service will fetch it)", exc)
        return
    write_atomic(state.policy, answer.bundle, 0o600)
    log.info("enrol.policy_kept version=%s bytes=%d", answer.version, len(answer.bundle))


def _rpc_error(exc: grpc.RpcError, address: str) -> EnrolError:
    code, details = exc.code(), exc.details() or "no details"
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return EnrolError(f"enrolment refused by the collector: {details}")
    if code == grpc.StatusCode.UNAVAILABLE and "handshake" in details.lower():
        return EnrolError(
            f"collector {address} is not trusted: its TLS certificate is not from the CA given "
            f"with --ca, or it is not for this address ({details})",
            retryable=True,
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return EnrolError(
            f"collector {address} unavailable (down, unreachable, or its certificate is not "
            f"from the pinned CA): {details}",
            retryable=True,
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return EnrolError(f"collector {address} did not answer in time", retryable=True)
    name = code.name if code is not None else "UNKNOWN"
    return EnrolError(f"enrolment failed ({name}): {details}")


def _enrolled_agent(state: StateDir) -> str | None:
    """The agent id this folder is enrolled as; "unknown" when identity.json is damaged."""
    if not state.identity.exists():
        return None
    try:
        agent_id = load_identity(state).agent_id
    except StateError:
        return "unknown"
    return agent_id if AGENT_ID.fullmatch(agent_id) else "unknown"


def _set_outbox_aside(state: StateDir, old_agent: str) -> Path | None:
    """On re-enrolment the old outbox belongs to the old chain: keep it, out of the way."""
    if not state.outbox.exists():
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = state.outbox.with_name(f"{state.outbox.name}.previous-{old_agent}-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{state.outbox}{suffix}")
        if part.exists():
            part.replace(Path(f"{kept}{suffix}"))
    return kept
