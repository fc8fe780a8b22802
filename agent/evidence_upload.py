"""The evidence uploader: sealed screenshots from the evidence outbox to the collector, by
`Collector.PutEvidence` in signed chunks, on its own thread and its own connection, so events
(agent/shipper.py) never wait behind a picture.

    for each waiting file, oldest first:
        EvidenceChunk(offset, data <= chunk_bytes, signed) ──▶
                                                  ◀── EvidenceAck(have, complete)
        next chunk from `have` (the collector says where to resume: after a dropped
        connection, or a file it partly holds from before a restart) ... until complete:
        then the file is deleted here.

A collector that is down is retried with jittered exponential backoff; one that answers
UNIMPLEMENTED (a collector older than screenshots) is asked again only every few minutes,
said once in the log; the files wait within their budget (agent/evidence_store.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.clock import AgentClock
from agent.evidence_store import EvidenceStore, Waiting
from agent.shipper import Backoff
from agent.transport import rpc_code, rpc_detail
from protos import envelope, ingest_pb2, ingest_pb2_grpc

log = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024  # under the contract's 1 MiB per chunk
Channel = Callable[[], grpc.Channel]


class EvidenceUploader:
    def __init__(self, store: EvidenceStore, key: Ed25519PrivateKey, agent_id: str,
                 channel: Channel, clock: AgentClock | None = None,
                 chunk_bytes: int = CHUNK_BYTES, idle_s: float = 5.0,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 60.0,
                 unimplemented_s: float = 300.0, timeout_s: float = 30.0) -> None:  # fmt: skip
        self._store = store
        self._key = key
        self._agent_id = agent_id
        self._channel = channel
        self._clock = clock or AgentClock()
        self._chunk = chunk_bytes
        self._idle_s = idle_s
        self._backoff = Backoff(backoff_base_s, backoff_cap_s)
        self._unimplemented_s = unimplemented_s
        self._timeout_s = timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._have: dict[str, int] = {}  # sha256 -> bytes the collector last said it holds
        self._said_unimplemented = False
        self.uploaded = 0  # files the collector acknowledged complete
        self.last_error: str | None = None

    def wake(self) -> None:
        """A new file is waiting (the screenshotter calls this)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stop.is_set():
            wait = self.upload_waiting()
            self._wake.wait(wait)
            self._wake.clear()

    def upload_waiting(self) -> float:
        """Send what waits; return how long to wait before the next round."""
        waiting = self._store.waiting()
        if not waiting:
            return self._idle_s
        try:
            with self._channel() as channel:
                stub = ingest_pb2_grpc.CollectorStub(channel)
                for item in waiting:
                    if self._stop.is_set():
                        break
                    self._upload(stub, item)
        except grpc.RpcError as exc:
            return self._failed(exc)
        self._backoff.reset()
        self.last_error = None
        return 0.0 if self._store.waiting() else self._idle_s

    def _failed(self, exc: grpc.RpcError) -> float:
        self.last_error = rpc_code(exc)
        if self.last_error == grpc.StatusCode.UNIMPLEMENTED.name:
            if not self._said_unimplemented:
                self._said_unimplemented = True
                log.warning("evidence.collector_takes_none: the collector does not take "
                            "screenshots yet (UNIMPLEMENTED); they wait here within their "
                            "budget and are asked for again every %gs", self._unimplemented_s)
            return self._backoff.slow(self._unimplemented_s)
        delay = self._backoff.next_delay()
        log.warning("evidence.upload_failed code=%s detail=%r retry_s=%.1f",
                    self.last_error, rpc_detail(exc), delay)  # fmt: skip
        return delay

    def _upload(self, stub: ingest_pb2_grpc.CollectorStub, item: Waiting) -> None:
        try:
            data = item.path.read_bytes()
        except FileNotFoundError:  # dropped at the budget meanwhile
            return
        sha = hashlib.sha256(data).hexdigest()
        offset = min(self._have.get(sha, 0), len(data))
        while not self._stop.is_set():
            piece = data[offset : offset + self._chunk]
            ack = stub.PutEvidence(self._request(item.event_id, sha, len(data), offset, piece),
                                   timeout=self._timeout_s)  # fmt: skip
            if ack.complete:
                self._store.remove(item)
                self._have.pop(sha, None)
                self.uploaded += 1
                log.info("evidence.uploaded event_id=%s bytes=%d", item.event_id, len(data))
                return
            have = max(0, min(int(ack.have), len(data)))
            self._have[sha] = have
            if have == offset:  # no progress (or all sent and not accepted): next round
                log.warning("evidence.no_progress event_id=%s have=%d size=%d",
                            item.event_id, have, len(data))  # fmt: skip
                self._have.pop(sha, None)
                return
            offset = have

    def _request(self, event_id: str, sha: str, size: int, offset: int,
                 data: bytes) -> ingest_pb2.EvidenceChunk:  # fmt: skip
        unix_ms = self._clock.unix_ms()
        payload = envelope.evidence_chunk_payload(self._agent_id, event_id, sha, size, offset,
                                                  data, unix_ms)  # fmt: skip
        return ingest_pb2.EvidenceChunk(agent_id=self._agent_id, event_id=event_id, sha256=sha,
                                        size=size, offset=offset, data=data, unix_ms=unix_ms,
                                        signature=self._key.sign(payload))  # fmt: skip
