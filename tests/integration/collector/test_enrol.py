"""Enrolment over real TLS gRPC: tokens that are wrong, expired or used up are refused."""

from __future__ import annotations

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.storage.store import Store
from protos import envelope, ingest_pb2, ingest_pb2_grpc
from tests import agentsim
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def stub(collector: CollectorHarness) -> ingest_pb2_grpc.CollectorStub:
    return ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))


def refused(stub: ingest_pb2_grpc.CollectorStub, token: str) -> str:
    with pytest.raises(grpc.RpcError) as err:
        agentsim.enrol(stub, token)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    return err.value.details() or ""


def test_a_good_token_enrols_and_the_agent_is_listed(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    agent_id, _ = agentsim.enrol(stub, collector.new_token())
    [row] = collector.op("agents")
    assert row["agent_id"] == agent_id and row["last_seq"] == 0 and row["revoked_ms"] is None
    journal = collector.data.agents_journal.read_text()
    assert agent_id in journal


def test_wrong_tokens_are_refused(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    good = collector.new_token()
    assert "form" in refused(stub, "letmein")
    assert "not known" in refused(stub, good[:-3] + "xyz")
    assert "not known" in refused(stub, "sgt_00000000_" + good.split("_", 2)[2])
    assert collector.op("agents") == []


def test_an_expired_token_is_refused(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    token = collector.new_token()

    def expire(store: Store) -> None:
        store.con.execute("UPDATE tokens SET expires_ms = 0")

    collector.with_store(expire)
    assert "expired" in refused(stub, token)


def test_a_token_is_used_up_after_its_uses(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    token = collector.new_token(uses=2)
    agentsim.enrol(stub, token)
    agentsim.enrol(stub, token)
    assert "used up" in refused(stub, token)
    assert len(collector.op("agents")) == 2


def test_a_proof_made_with_another_key_is_refused(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    token = collector.new_token()
    key, thief = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pub = agentsim.raw_key(key)
    with pytest.raises(grpc.RpcError) as err:
        stub.Enrol(
            ingest_pb2.EnrolRequest(
                token=token, public_key=pub,
                proof=thief.sign(envelope.enrol_proof_payload(token, pub)),
            )
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The token was not spent on the failed attempt.
    agentsim.enrol(stub, token)


def test_retrying_an_enrolment_with_the_same_key_returns_the_same_agent(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    key = Ed25519PrivateKey.generate()
    first, _ = agentsim.enrol(stub, collector.new_token(), key)
    again, _ = agentsim.enrol(stub, collector.new_token(), key)
    assert first == again and len(collector.op("agents")) == 1


def test_a_revoked_key_cannot_enrol_again(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    key = Ed25519PrivateKey.generate()
    agent_id, _ = agentsim.enrol(stub, collector.new_token(), key)
    collector.op("revoke", agent_id=agent_id, reason="stolen")
    with pytest.raises(grpc.RpcError) as err:
        agentsim.enrol(stub, collector.new_token(), key)
    assert "revoked" in (err.value.details() or "")


def test_the_collector_restarts_with_its_agents_and_chain_heads(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    agent_id, key = agentsim.enrol(stub, collector.new_token())
    agent = agentsim.SimAgent(agent_id, key)
    s = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(4)
    s.send(agent.batch(s.welcome.nonce, first, prev, raws))
    s.close()
    collector.stop()
    collector.start()
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    s = agentsim.Session(stub, agent)
    assert s.welcome.last_seq == 4 and s.welcome.head_hash == agent.head
    s.close()
