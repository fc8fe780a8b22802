"""A protocol-level agent for tests and benchmarks: real keys, real TLS gRPC, real signatures.

It speaks the wire contract directly (no outbox), so tests can also craft what an honest agent
never sends: forged signatures, replays, forks and gaps.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protos import envelope, events_pb2, ingest_pb2, ingest_pb2_grpc


def channel(address: str, ca: Path) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return grpc.secure_channel(address, creds)


def raw_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def enrol(
    stub: ingest_pb2_grpc.CollectorStub, token: str, key: Ed25519PrivateKey | None = None
) -> tuple[str, Ed25519PrivateKey]:
    key = key or Ed25519PrivateKey.generate()
    pub = raw_key(key)
    reply = stub.Enrol(
        ingest_pb2.EnrolRequest(
            token=token,
            public_key=pub,
            proof=key.sign(envelope.enrol_proof_payload(token, pub)),
            hostname=socket.gethostname(),
            os="test",
            agent_version="sim",
        ),
        timeout=30,
    )
    return reply.agent_id, key


def test_event(seq: int, note: str = "") -> events_pb2.Event:
    return events_pb2.Event(
        seq=seq,
        observed_unix_ms=int(time.time() * 1000),
        severity=1,
        event_id=os.urandom(8).hex(),
        test_alert=events_pb2.TestAlert(requested_by="sim", note=note),
    )


@dataclass
class SimAgent:
    """Keeps its own chain in memory and ships over one Ship stream per `session()`."""

    agent_id: str
    key: Ed25519PrivateKey
    seq: int = 0
    head: bytes = b""
    raws: list[bytes] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    clock_offset_ms: int | None = None  # None: Hello says no clock (an agent before clocks)
    witnessed: bytes = b""  # a checkpoint handed back in Hello, as an agent keeps it

    def __post_init__(self) -> None:
        self.head = self.head or envelope.genesis(self.agent_id)

    def record(self, n: int, note: str = "",
               make: Callable[[int], events_pb2.Event] | None = None,
               ) -> tuple[int, bytes, list[bytes], list[bytes]]:  # fmt: skip
        """Make n chained events (test alerts, or `make(seq)`'s); returns (first_seq,
        prev_hash, raws, hashes)."""
        first, prev = self.seq + 1, self.head
        raws = [envelope.event_bytes(make(first + i) if make else test_event(first + i, note))
                for i in range(n)]  # fmt: skip
        hashes = envelope.chain(prev, raws)
        self.seq += n
        self.head = hashes[-1]
        self.raws += raws
        self.hashes += hashes
        return first, prev, raws, hashes

    def head_at_genesis(self) -> bytes:
        return envelope.genesis(self.agent_id)

    def hello(self) -> ingest_pb2.AgentMessage:
        hello = ingest_pb2.Hello(agent_id=self.agent_id, agent_version="sim", hostname="sim")
        if self.clock_offset_ms is not None:
            hello.unix_ms = time.time_ns() // 1_000_000 + self.clock_offset_ms
        hello.witnessed_checkpoint = self.witnessed
        return ingest_pb2.AgentMessage(hello=hello)

    def batch(
        self,
        nonce: bytes,
        first: int,
        prev: bytes,
        raws: list[bytes],
        key: Ed25519PrivateKey | None = None,
    ) -> ingest_pb2.AgentMessage:
        b = envelope.make_batch(key or self.key, self.agent_id, nonce, first, prev, raws)
        return ingest_pb2.AgentMessage(batch=b)


class Session:
    """One Ship stream driven step by step: send a message, read the answer."""

    def __init__(
        self,
        stub: ingest_pb2_grpc.CollectorStub,
        agent: SimAgent,
        prove_with: Ed25519PrivateKey | None = None,
    ) -> None:
        """Opens the stream: Hello, the Challenge answered (with prove_with, default the
        agent's own key), the Welcome read."""
        self._outbox: list[ingest_pb2.AgentMessage | None] = []
        import queue

        self._q: queue.SimpleQueue[ingest_pb2.AgentMessage | None] = queue.SimpleQueue()
        self._q.put(agent.hello())
        self._answers = stub.Ship(self._requests(), timeout=60)
        self.challenge = next(self._answers).challenge
        signature = (prove_with or agent.key).sign(
            envelope.hello_proof_payload(agent.agent_id, self.challenge.nonce)
        )
        self._q.put(ingest_pb2.AgentMessage(proof=ingest_pb2.Proof(signature=signature)))
        self.welcome = next(self._answers).welcome

    def _requests(self) -> Iterator[ingest_pb2.AgentMessage]:
        while (msg := self._q.get()) is not None:
            yield msg

    def send(self, message: ingest_pb2.AgentMessage) -> ingest_pb2.CollectorMessage:
        self.post(message)
        return self.answer()

    def post(self, message: ingest_pb2.AgentMessage) -> None:
        """Send without waiting: several batches in flight, as the shipper does."""
        self._q.put(message)

    def answer(self) -> ingest_pb2.CollectorMessage:
        return next(self._answers)

    def close(self) -> None:
        self._q.put(None)
        for _ in self._answers:
            pass


def resend(
    stub: ingest_pb2_grpc.CollectorStub,
    agent: SimAgent,
    *batches: tuple[int, bytes, list[bytes]],
) -> tuple[int, list[int]]:
    """Reconnect, as an agent does after a failed stream, and send the batches again (each
    ``record(n)[:3]``). Returns the head the Welcome gave and each batch's acked seq."""
    again = Session(stub, agent)
    acks = [again.send(agent.batch(again.welcome.nonce, *args)).ack.last_seq for args in batches]
    again.close()
    return again.welcome.last_seq, acks


def evidence_chunk(agent_id: str, key: Ed25519PrivateKey, event_id: str, sealed: bytes,
                   offset: int, length: int, *, sha256: str | None = None,
                   size: int | None = None) -> ingest_pb2.EvidenceChunk:  # fmt: skip
    """A chunk of a sealed screenshot as an agent sends it (signed with its key); sha256 and
    size default to the file's own, so a test can name others."""
    import hashlib

    data = sealed[offset : offset + length]
    sha = sha256 if sha256 is not None else hashlib.sha256(sealed).hexdigest()
    whole = size if size is not None else len(sealed)
    unix_ms = time.time_ns() // 1_000_000
    payload = envelope.evidence_chunk_payload(agent_id, event_id, sha, whole, offset, data,
                                              unix_ms)  # fmt: skip
    return ingest_pb2.EvidenceChunk(agent_id=agent_id, event_id=event_id, sha256=sha,
                                    size=whole, offset=offset, data=data, unix_ms=unix_ms,
                                    signature=key.sign(payload))  # fmt: skip


def put_screenshot(stub: ingest_pb2_grpc.CollectorStub, agent_id: str, key: Ed25519PrivateKey,
                   event_id: str, sealed: bytes,
                   chunk: int = 1024 * 1024) -> ingest_pb2.EvidenceAck:  # fmt: skip
    """Send a whole sealed screenshot from where the collector says it is."""
    ack = ingest_pb2.EvidenceAck()
    while not ack.complete:
        ack = stub.PutEvidence(evidence_chunk(agent_id, key, event_id, sealed, ack.have, chunk),
                               timeout=30)  # fmt: skip
    return ack
