"""The semantic stage's model over the pipeline: the collector keeps the model the published
policy names; the agent fetches it in 1 MiB chunks over real gRPC/TLS, resumes a partial
download, refuses a file whose hash is not the policy's, and the running service judges with
it. Requests are signed like policy requests."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.identity import StateDir, load_ca, load_identity, load_key
from agent.semantic import ModelFetcher, SemanticStage
from collector import models
from collector import policy as published
from protos import envelope, events_pb2, ingest_pb2, ingest_pb2_grpc
from rules.embed import MODEL_DIR, MODEL_FILE, file_sha256
from tests.harness import CollectorHarness
from tests.integration.agent.test_policy_agent import Probe, Wait, running, statuses

pytestmark = pytest.mark.integration
SHA = (MODEL_DIR / f"{MODEL_FILE}.sha256").read_text().split()[0]


def _fetcher(state: StateDir, stage: SemanticStage,
             emitted: list[events_pb2.Event]) -> ModelFetcher:  # fmt: skip
    ident = load_identity(state)
    return ModelFetcher(stage, emitted.append, ident.collector, load_ca(state, ident),
                        ident.agent_id, load_key(state, ident))  # fmt: skip


def test_publish_keeps_the_model_and_serves_it_in_chunks(collector: CollectorHarness,
                                                         state: StateDir, tmp_path: Path) -> None:
    published.publish(collector.data)
    kept = models.models_dir(collector.data) / SHA
    assert file_sha256(kept) == SHA
    stage = SemanticStage(tmp_path / "models", lambda e: None)
    emitted: list[events_pb2.Event] = []
    fetcher = _fetcher(state, stage, emitted)
    # A partial download from an earlier run: the fetch resumes after it.
    part = stage.path(SHA).with_suffix(".part")
    part.parent.mkdir(parents=True)
    part.write_bytes((MODEL_DIR / MODEL_FILE).read_bytes()[: 3 * models.CHUNK + 17])
    assert fetcher.fetch(SHA)
    assert file_sha256(stage.path(SHA)) == SHA and not part.exists()
    assert [e.status.kind for e in emitted] == [events_pb2.AgentStatus.SEMANTIC_READY]


def test_a_file_with_another_hash_is_refused_then_fetched_again(
        collector: CollectorHarness, state: StateDir, tmp_path: Path) -> None:  # fmt: skip
    published.publish(collector.data)
    stage = SemanticStage(tmp_path / "models", lambda e: None)
    emitted: list[events_pb2.Event] = []
    fetcher = _fetcher(state, stage, emitted)
    part = stage.path(SHA).with_suffix(".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 1000)  # a damaged partial file: the whole is not the model
    assert not fetcher.fetch(SHA)
    assert not part.exists() and not stage.path(SHA).exists()
    (refused,) = emitted
    assert refused.status.kind == events_pb2.AgentStatus.SEMANTIC_UNAVAILABLE
    assert "SHA-256" in refused.status.detail
    assert fetcher.fetch(SHA)  # from the start this time
    assert file_sha256(stage.path(SHA)) == SHA


def test_model_requests_must_be_signed_by_an_enrolled_agent(
        collector: CollectorHarness, state: StateDir) -> None:  # fmt: skip
    published.publish(collector.data)
    ident = load_identity(state)
    stranger = Ed25519PrivateKey.generate()

    def ask(key: Ed25519PrivateKey, sha: str = SHA) -> ingest_pb2.ModelChunk:
        ms = time.time_ns() // 1_000_000
        request = ingest_pb2.ModelRequest(
            agent_id=ident.agent_id, sha256=sha, offset=0, unix_ms=ms,
            signature=key.sign(envelope.model_request_payload(ident.agent_id, sha, 0, ms)))
        creds = grpc.ssl_channel_credentials(load_ca(state, ident))
        with grpc.secure_channel(ident.collector, creds) as channel:
            return ingest_pb2_grpc.CollectorStub(channel).FetchModel(request, timeout=30)

    chunk = ask(load_key(state, ident))
    assert len(chunk.data) == models.CHUNK and chunk.size == (MODEL_DIR / MODEL_FILE).stat().st_size
    with pytest.raises(grpc.RpcError) as refused:
        ask(stranger)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as missing:
        ask(load_key(state, ident), "a" * 64)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_running_agent_fetches_the_model_and_judges_with_it(
        collector: CollectorHarness, state: StateDir, tmp_path: Path,
        wait: Wait) -> None:  # fmt: skip
    published.publish(collector.data)
    agent_id = load_identity(state).agent_id
    probes: list[Probe] = []
    with running(state, tmp_path, probes) as service:
        wait(lambda: ("SEMANTIC_READY", f"model {SHA[:12]}") in statuses(collector, agent_id),
             what="the model fetched and checked")
        stage, holder = service.semantic, service.holder
        assert stage is not None and holder is not None
        wait(lambda: stage.judge_for(holder.current(), "ks2") is not None, timeout=300,
             what="the bank embedded")  # fmt: skip
        judge = stage.judge_for(holder.current(), "ks2")
        assert judge is not None and stage.state == "ready"
        exemplar = next(e for e in judge.semantic.exemplars if e.category == "grooming")
        alerts = judge.judge(exemplar.text)  # the policy's own exemplar: its own nearest
        assert alerts and all(a.category == "grooming" for a in alerts)
        assert max(a.similarity for a in alerts) > 0.9
    assert file_sha256(state.root / "models" / f"{SHA}.onnx") == SHA
