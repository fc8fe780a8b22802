"""The evidence uploader against a real gRPC server on loopback (a small servicer standing in
for the collector's PutEvidence, which checks every chunk's signature): a file goes in chunks
and is deleted once complete; it resumes where the collector's ack says, after a dropped
call and after a restart; a collector that is down or answers UNIMPLEMENTED keeps the file
and is asked again only after a backoff."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence_store import EvidenceStore
from agent.evidence_upload import EvidenceUploader
from protos import envelope, ingest_pb2, ingest_pb2_grpc

pytestmark = pytest.mark.integration

AGENT = "agent-up"
CHUNK = 64 * 1024


class Evidence(ingest_pb2_grpc.CollectorServicer):
    """Holds what it is sent, in order; `fail_at` calls are refused once as UNAVAILABLE."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.public = key.public_key()
        self.held: dict[str, bytearray] = {}
        self.offsets: list[int] = []
        self.fail_at: set[int] = set()
        self.unimplemented = False
        self.lock = threading.Lock()

    def PutEvidence(self, request: ingest_pb2.EvidenceChunk,
                    context: grpc.ServicerContext) -> ingest_pb2.EvidenceAck:  # fmt: skip
        if self.unimplemented:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this collector takes no screenshots")
        r = request
        self.public.verify(r.signature, envelope.evidence_chunk_payload(
            r.agent_id, r.event_id, r.sha256, r.size, r.offset, r.data, r.unix_ms))  # fmt: skip
        with self.lock:
            self.offsets.append(r.offset)
            if len(self.offsets) in self.fail_at:
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped")
            held = self.held.setdefault(r.sha256, bytearray())
            if r.offset <= len(held):
                held += r.data[len(held) - r.offset :]
            done = len(held) == r.size and hashlib.sha256(held).hexdigest() == r.sha256
            return ingest_pb2.EvidenceAck(have=len(held), complete=done)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def collector(key: Ed25519PrivateKey) -> Iterator[tuple[Evidence, str]]:
    servicer = Evidence(key)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ingest_pb2_grpc.add_CollectorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def uploader(store: EvidenceStore, key: Ed25519PrivateKey, address: str) -> EvidenceUploader:
    return EvidenceUploader(store, key, AGENT, lambda: grpc.insecure_channel(address),
                            chunk_bytes=CHUNK, backoff_base_s=0.05, backoff_cap_s=0.2,
                            unimplemented_s=120, timeout_s=30)  # fmt: skip


def sealed_file(store: EvidenceStore, event_id: str, size: int = 200_000) -> bytes:
    data = os.urandom(size)
    store.put(event_id, data, budget_mb=5)
    return data


def test_a_file_goes_in_chunks_resumes_after_a_dropped_call_and_is_deleted_when_complete(
    tmp_path: Path, key: Ed25519PrivateKey, collector: tuple[Evidence, str]
) -> None:
    servicer, address = collector
    store = EvidenceStore(tmp_path / "evidence")
    data = sealed_file(store, "ev-1")
    servicer.fail_at = {2}  # the second chunk's call is cut off
    up = uploader(store, key, address)
    runner = threading.Thread(target=up.run, daemon=True)
    runner.start()
    try:
        deadline = threading.Event()
        for _ in range(600):
            if up.uploaded:
                break
            deadline.wait(0.1)
    finally:
        up.stop()
        runner.join(30)
    assert up.uploaded == 1 and store.waiting() == []
    assert bytes(servicer.held[hashlib.sha256(data).hexdigest()]) == data
    # the refused chunk is sent again from where the last ack said, not from the start
    assert servicer.offsets == [0, CHUNK, CHUNK, 2 * CHUNK, 3 * CHUNK]


def test_after_a_restart_it_resumes_where_the_collector_says(
    tmp_path: Path, key: Ed25519PrivateKey, collector: tuple[Evidence, str]
) -> None:
    servicer, address = collector
    store = EvidenceStore(tmp_path / "evidence")
    data = sealed_file(store, "ev-2")
    sha = hashlib.sha256(data).hexdigest()
    servicer.held[sha] = bytearray(data[: 2 * CHUNK + 100])  # from before the agent restarted
    up = uploader(store, key, address)
    assert up.upload_waiting() > 0 and up.uploaded == 1
    assert bytes(servicer.held[sha]) == data and store.waiting() == []
    assert servicer.offsets == [0, 2 * CHUNK + 100, 3 * CHUNK + 100]  # one to learn where


def test_a_collector_that_takes_no_screenshots_keeps_them_waiting_and_is_asked_rarely(
    tmp_path: Path, key: Ed25519PrivateKey, collector: tuple[Evidence, str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    servicer, address = collector
    servicer.unimplemented = True
    store = EvidenceStore(tmp_path / "evidence")
    sealed_file(store, "ev-3")
    up = uploader(store, key, address)
    waits = [up.upload_waiting() for _ in range(2)]
    assert all(60 <= w <= 120 for w in waits)  # the slow retry, not the backoff
    assert up.last_error == "UNIMPLEMENTED" and len(store.waiting()) == 1
    assert caplog.text.count("evidence.collector_takes_none") == 1


def test_a_collector_that_is_down_keeps_the_files_and_backs_off(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    sealed_file(store, "ev-4")
    up = uploader(store, key, "127.0.0.1:9")  # nothing listens on the discard port
    assert 0 <= up.upload_waiting() <= 0.2
    assert up.last_error == "UNAVAILABLE" and len(store.waiting()) == 1
