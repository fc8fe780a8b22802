"""Screenshots from PCs (issue 18): signed chunks over real TLS gRPC to a real collector,
kept sealed on disk and recorded in DuckDB; the key they are sealed to comes with the policy."""

from __future__ import annotations

import hashlib
import os
import stat

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from collector import pki, policy
from collector.intake import screenshots
from protos import evidence, ingest_pb2_grpc
from rules import bundle
from tests import agentsim
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration
CHUNK = 64 * 1024


def _agent(collector: CollectorHarness) -> tuple[ingest_pb2_grpc.CollectorStub, str,
                                                 Ed25519PrivateKey]:  # fmt: skip
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    agent_id, key = agentsim.enrol(stub, collector.new_token())
    return stub, agent_id, key


def _sealed(collector: CollectorHarness, agent_id: str, event_id: str, n: int = 200_000) -> bytes:
    image = b"\x89PNG\r\n\x1a\n" + os.urandom(n)
    return evidence.seal(collector.data.evidence_pub.read_bytes(), image, agent_id, event_id)


def _rows(collector: CollectorHarness) -> list[tuple[object, ...]]:
    return collector.with_store(lambda s: s.con.execute(
        "SELECT agent_id, event_id, sha256, size, path FROM screenshots").fetchall())  # fmt: skip


def test_the_evidence_key_is_made_at_init_kept_private_and_published_with_the_policy(
    collector: CollectorHarness,
) -> None:
    data = collector.data
    assert stat.S_IMODE(data.evidence_key.stat().st_mode) == 0o600
    raw = data.evidence_pub.read_bytes()
    assert raw == evidence.public_key_of(pki.load_evidence_key(data))
    published = policy.publish(data)
    signer = Ed25519PublicKey.from_public_bytes(data.policy_pub.read_bytes())
    checked = bundle.verify_bundle(published.path.read_bytes(), signer)
    assert checked.policy.evidence_key == raw  # PCs get it signed, with the policy
    assert pki.ensure_evidence_key(data) == raw  # never replaced once made


def test_a_data_folder_made_before_screenshots_gets_its_key_at_start(
    collector: CollectorHarness,
) -> None:
    collector.stop()
    collector.data.evidence_key.unlink()
    collector.data.evidence_pub.unlink()
    collector.start()
    assert stat.S_IMODE(collector.data.evidence_key.stat().st_mode) == 0o600
    assert collector.data.evidence_pub.read_bytes() == evidence.public_key_of(
        pki.load_evidence_key(collector.data))  # fmt: skip


def test_a_screenshot_arrives_in_chunks_resumes_and_is_kept_sealed(
    collector: CollectorHarness,
) -> None:
    stub, agent_id, key = _agent(collector)
    sealed = _sealed(collector, agent_id, "ev1")
    sha = hashlib.sha256(sealed).hexdigest()
    first = stub.PutEvidence(agentsim.evidence_chunk(agent_id, key, "ev1", sealed, 0, CHUNK))
    assert (first.have, first.complete) == (CHUNK, False)
    # The connection dropped and the agent restarted: it asks from 0 and is told where to go on.
    again = stub.PutEvidence(agentsim.evidence_chunk(agent_id, key, "ev1", sealed, 0, CHUNK))
    assert (again.have, again.complete) == (CHUNK, False)
    collector.stop()
    collector.start()
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    ack = agentsim.put_screenshot(stub, agent_id, key, "ev1", sealed, CHUNK)
    assert (ack.have, ack.complete) == (len(sealed), True)
    assert _rows(collector) == [(agent_id, "ev1", sha, len(sealed),
                                 f"screenshots/{agent_id}/{sha}.sealed")]  # fmt: skip
    held = collector.data.root / f"screenshots/{agent_id}/{sha}.sealed"
    assert held.read_bytes() == sealed  # sealed at rest, as sent
    assert stat.S_IMODE(held.stat().st_mode) == 0o600
    # Sent again (the answer was lost): nothing changes.
    assert agentsim.put_screenshot(stub, agent_id, key, "ev1", sealed, CHUNK).complete
    assert len(_rows(collector)) == 1


def _refused(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def _nothing_kept(collector: CollectorHarness, agent_id: str) -> None:
    assert _rows(collector) == []
    folder = screenshots.agent_dir(collector.data, agent_id)
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_forged_chunk_is_refused_and_nothing_is_stored(collector: CollectorHarness) -> None:
    stub, agent_id, _ = _agent(collector)
    sealed = _sealed(collector, agent_id, "ev1")
    forged = agentsim.evidence_chunk(agent_id, Ed25519PrivateKey.generate(), "ev1", sealed, 0,
                                     len(sealed))  # fmt: skip
    err = _refused(lambda: stub.PutEvidence(forged))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not signed with the agent's key" in (err.details() or "")
    _nothing_kept(collector, agent_id)


def test_a_wrong_size_is_refused_and_nothing_is_stored(collector: CollectorHarness) -> None:
    stub, agent_id, key = _agent(collector)
    sealed = _sealed(collector, agent_id, "ev1")
    too_big = agentsim.evidence_chunk(agent_id, key, "ev1", sealed, 0, CHUNK,
                                      size=screenshots.MAX_FILE + 1)  # fmt: skip
    err = _refused(lambda: stub.PutEvidence(too_big))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the limit is" in (err.details() or "")
    overrun = agentsim.evidence_chunk(agent_id, key, "ev1", sealed, 0, CHUNK, size=CHUNK - 1)
    err = _refused(lambda: stub.PutEvidence(overrun))
    assert "does not fit a file of" in (err.details() or "")
    _nothing_kept(collector, agent_id)


def test_a_hash_mismatch_is_refused_and_nothing_is_kept(collector: CollectorHarness) -> None:
    stub, agent_id, key = _agent(collector)
    sealed = _sealed(collector, agent_id, "ev1")
    lie = hashlib.sha256(b"another file").hexdigest()
    first = agentsim.evidence_chunk(agent_id, key, "ev1", sealed, 0, CHUNK, sha256=lie)
    assert stub.PutEvidence(first).have == CHUNK
    rest = agentsim.evidence_chunk(agent_id, key, "ev1", sealed, CHUNK, len(sealed), sha256=lie)
    err = _refused(lambda: stub.PutEvidence(rest))
    assert err.code() == grpc.StatusCode.DATA_LOSS
    assert "SHA-256 is not the one its chunks named" in (err.details() or "")
    _nothing_kept(collector, agent_id)


def test_an_agent_has_only_a_few_screenshots_part_sent(collector: CollectorHarness) -> None:
    stub, agent_id, key = _agent(collector)
    for n in range(screenshots.MAX_UNFINISHED):
        sealed = _sealed(collector, agent_id, f"ev{n}")
        stub.PutEvidence(agentsim.evidence_chunk(agent_id, key, f"ev{n}", sealed, 0, CHUNK))
    one_more = _sealed(collector, agent_id, "evx")
    err = _refused(lambda: stub.PutEvidence(
        agentsim.evidence_chunk(agent_id, key, "evx", one_more, 0, CHUNK)))  # fmt: skip
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "part-sent" in (err.details() or "")


def test_an_agent_cannot_fill_the_disk_with_whole_screenshots(
    collector: CollectorHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit made small for the test (256 MiB in service): three files fit, the fourth not.
    stub, agent_id, key = _agent(collector)
    sealed = [_sealed(collector, agent_id, f"ev{n}") for n in range(4)]
    monkeypatch.setattr(screenshots, "MAX_AGENT_BYTES", 3 * len(sealed[0]) + 100)
    for n in range(3):
        assert agentsim.put_screenshot(stub, agent_id, key, f"ev{n}", sealed[n], CHUNK).complete
    err = _refused(lambda: stub.PutEvidence(
        agentsim.evidence_chunk(agent_id, key, "ev3", sealed[3], 0, CHUNK)))  # fmt: skip
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "its limit" in (err.details() or "")
    assert len(_rows(collector)) == 3
