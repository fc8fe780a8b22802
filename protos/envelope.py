"""What both ends agree on byte for byte: event bytes, the hash chain, and signatures.

An agent serialises each Event once (deterministically) and never again; the chain and every
later check work on those exact bytes, which the collector stores. The chain binds each event
to everything before it, the genesis binds the chain to one agent, and one Ed25519 signature
per batch over the chain's head covers every event in the batch.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protos import events_pb2, ingest_pb2

HASH_LEN = 32
NONCE_LEN = 16
_EVENT_DOMAIN = b"sg-event-v1\0"
_GENESIS_DOMAIN = b"sg-genesis-v1\0"
_BATCH_DOMAIN = b"sg-batch-v1\0"
_ENROL_DOMAIN = b"sg-enrol-v1\0"
_HELLO_DOMAIN = b"sg-hello-v1\0"
_POLICY_DOMAIN = b"sg-policy-request-v1\0"
_MODEL_DOMAIN = b"sg-model-request-v1\0"
_EVIDENCE_DOMAIN = b"sg-evidence-chunk-v1\0"
_U64 = struct.Struct(">Q")
MAX_SEVERITY = 5


class EnvelopeError(ValueError):
    """A batch or event that does not hold together (bad chain, bad signature, bad bytes)."""


def event_bytes(event: events_pb2.Event) -> bytes:
    """The one serialisation of an event that gets chained, signed and stored."""
    return event.SerializeToString(deterministic=True)


def genesis(agent_id: str) -> bytes:
    """h[0]: ties the chain to one agent, so another agent's events cannot be spliced in."""
    return hashlib.sha256(_GENESIS_DOMAIN + agent_id.encode()).digest()


def link(prev_hash: bytes, raw_event: bytes) -> bytes:
    """h[n] = SHA-256(domain | h[n-1] | event bytes)."""
    return hashlib.sha256(_EVENT_DOMAIN + prev_hash + raw_event).digest()


def chain(prev_hash: bytes, raw_events: Iterable[bytes]) -> list[bytes]:
    """Hashes of each event in turn, starting from prev_hash."""
    hashes = []
    h = prev_hash
    for raw in raw_events:
        h = hashlib.sha256(_EVENT_DOMAIN + h + raw).digest()
        hashes.append(h)
    return hashes


def batch_payload(
    agent_id: str, nonce: bytes, first_seq: int, last_seq: int, prev_hash: bytes, head: bytes
) -> bytes:
    """The bytes a batch signature covers."""
    return b"".join(
        (
            _BATCH_DOMAIN,
            agent_id.encode(),
            b"\0",
            nonce,
            _U64.pack(first_seq),
            _U64.pack(last_seq),
            prev_hash,
            head,
        )
    )


def enrol_proof_payload(token: str, public_key: bytes) -> bytes:
    """What an enrolling agent signs to show it holds the private key it presents."""
    return _ENROL_DOMAIN + token.encode() + b"\0" + public_key


def hello_proof_payload(agent_id: str, nonce: bytes) -> bytes:
    """What an agent signs to open a stream: its id and the collector's fresh nonce."""
    return _HELLO_DOMAIN + agent_id.encode() + b"\0" + nonce


def policy_request_payload(agent_id: str, have_version: str, unix_ms: int) -> bytes:
    """What an agent signs to ask for the policy."""
    return _POLICY_DOMAIN + agent_id.encode() + b"\0" + have_version.encode() + b"\0" + (
        _U64.pack(unix_ms)
    )


def model_request_payload(agent_id: str, sha256: str, offset: int, unix_ms: int) -> bytes:
    """What an agent signs to fetch a chunk of a model file the policy names."""
    return (_MODEL_DOMAIN + agent_id.encode() + b"\0" + sha256.encode() + b"\0"
            + _U64.pack(offset) + _U64.pack(unix_ms))  # fmt: skip


def evidence_chunk_payload(agent_id: str, event_id: str, sha256: str, size: int, offset: int,
                           data: bytes, unix_ms: int) -> bytes:
    """What an agent signs to send a chunk of a sealed screenshot (the chunk's own SHA-256
    stands in for its bytes)."""
    return (_EVIDENCE_DOMAIN + agent_id.encode() + b"\0" + event_id.encode() + b"\0"
            + sha256.encode() + b"\0" + _U64.pack(size) + _U64.pack(offset)
            + hashlib.sha256(data).digest() + _U64.pack(unix_ms))  # fmt: skip


def make_batch(
    key: Ed25519PrivateKey,
    agent_id: str,
    nonce: bytes,
    first_seq: int,
    prev_hash: bytes,
    raw_events: Sequence[bytes],
    hashes: Sequence[bytes] | None = None,
) -> ingest_pb2.Batch:
    """Build and sign a batch. Pass `hashes` when the outbox already stored them."""
    if not raw_events:
        raise EnvelopeError("a batch needs at least one event")
    if hashes is None:
        hashes = chain(prev_hash, raw_events)
    head = hashes[-1]
    last_seq = first_seq + len(raw_events) - 1
    signature = key.sign(batch_payload(agent_id, nonce, first_seq, last_seq, prev_hash, head))
    return ingest_pb2.Batch(
        agent_id=agent_id,
        first_seq=first_seq,
        prev_hash=prev_hash,
        events=raw_events,
        head_hash=head,
        signature=signature,
    )


class EventFields(NamedTuple):
    """A batch's decoded events, field by field (one entry per event, in seq order)."""

    seq: tuple[int, ...]
    observed_ms: tuple[int, ...]
    severity: tuple[int, ...]
    account: tuple[str, ...]
    event_id: tuple[str, ...]
    kind: tuple[str, ...]  # the payload set, "" for none (or one this version does not know)


_FIELDS = attrgetter("seq", "observed_unix_ms", "severity", "account", "event_id")


@dataclass(frozen=True)
class CheckedBatch:
    """A batch whose signature and internal chain hold, with its events decoded."""

    batch: ingest_pb2.Batch
    events: list[events_pb2.Event]
    hashes: list[bytes]
    fields: EventFields

    @property
    def first_seq(self) -> int:
        return self.batch.first_seq

    @property
    def last_seq(self) -> int:
        return self.batch.first_seq + len(self.batch.events) - 1


def check_batch(
    batch: ingest_pb2.Batch, public_key: Ed25519PublicKey, nonce: bytes, wire: bytes | None = None
) -> CheckedBatch:
    """Verify a batch on its own terms: shape, seqs, chain to its head, signature.

    `wire`: the bytes `batch` was parsed from, if the caller has them; the events are then
    decoded in one parse (BatchEvents) instead of one per event, about half the cost.
    Whether it continues the chain the collector already holds is the caller's question.
    Raises EnvelopeError whose first word is the reason (malformed, bad_chain, bad_signature);
    ValueError if `wire` is not the bytes of `batch` (the caller's bug, not the agent's).
    """
    n = len(batch.events)
    if n == 0 or batch.first_seq < 1:
        raise EnvelopeError("malformed: empty batch or first_seq < 1")
    if len(batch.prev_hash) != HASH_LEN or len(batch.head_hash) != HASH_LEN:
        raise EnvelopeError("malformed: chain hashes must be 32 bytes")
    last_seq = batch.first_seq + n - 1
    payload = batch_payload(
        batch.agent_id, nonce, batch.first_seq, last_seq, batch.prev_hash, batch.head_hash
    )
    try:
        public_key.verify(batch.signature, payload)
    except InvalidSignature:
        raise EnvelopeError("bad_signature: batch signature does not verify") from None
    hashes = chain(batch.prev_hash, batch.events)
    if hashes[-1] != batch.head_hash:
        raise EnvelopeError("bad_chain: events do not hash to the signed head")
    try:
        if wire is None:
            events = [events_pb2.Event.FromString(raw) for raw in batch.events]
        else:
            events = list(ingest_pb2.BatchEvents.FromString(wire).events)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise EnvelopeError(f"malformed: an event does not parse: {exc}") from None
    if len(events) != n:  # `wire` was not this batch's bytes: a caller's bug
        raise ValueError("check_batch: wire holds a different batch")
    seq, observed, severity, account, event_id = zip(*map(_FIELDS, events))  # noqa: B905 -- rows of five
    if seq != tuple(range(batch.first_seq, last_seq + 1)):
        raise EnvelopeError(f"malformed: event seqs are not {batch.first_seq}..{last_seq}")
    if max(severity) > MAX_SEVERITY:
        raise EnvelopeError(f"malformed: an event's severity is above {MAX_SEVERITY}")
    kind = tuple(e.WhichOneof("payload") or "" for e in events)
    fields = EventFields(seq, observed, severity, account, event_id, kind)
    return CheckedBatch(batch=batch, events=events, hashes=hashes, fields=fields)


def verify_stored_chain(
    agent_id: str, rows: Iterable[tuple[int, bytes, bytes]], start: tuple[int, bytes] | None = None
) -> int:
    """Re-verify stored (seq, raw, hash) rows in seq order; returns the count checked.

    `start` is (seq, hash) of the event just before the first row; None means from genesis.
    """
    expected_seq, h = (1, genesis(agent_id)) if start is None else (start[0] + 1, start[1])
    count = 0
    for seq, raw, stored_hash in rows:
        if seq != expected_seq:
            raise EnvelopeError(f"gap: expected seq {expected_seq}, found {seq}")
        h = link(h, raw)
        if h != stored_hash:
            raise EnvelopeError(f"bad_chain: event {seq} does not hash to its stored hash")
        expected_seq += 1
        count += 1
    return count


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise EnvelopeError("malformed: an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)
