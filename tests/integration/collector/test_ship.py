"""The collector's half of the contract, against a real TLS gRPC server and DuckDB."""

from __future__ import annotations

import queue

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protos import envelope, ingest_pb2, ingest_pb2_grpc
from tests import agentsim
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def stub(collector: CollectorHarness) -> ingest_pb2_grpc.CollectorStub:
    return ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))


@pytest.fixture
def agent(collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub) -> agentsim.SimAgent:
    agent_id, key = agentsim.enrol(stub, collector.new_token())
    return agentsim.SimAgent(agent_id, key)


def test_batch_is_stored_once_with_its_chain_verified(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    session = agentsim.Session(stub, agent)
    assert session.welcome.last_seq == 0
    first, prev, raws, _ = agent.record(5)
    answer = session.send(agent.batch(session.welcome.nonce, first, prev, raws))
    assert answer.ack.last_seq == 5 and not answer.ack.duplicate
    session.close()
    events = collector.events(agent.agent_id)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert {e["chain"] for e in events} == {"verified"}
    assert collector.tampering() == []


def test_resent_batch_in_a_new_session_is_acked_without_a_second_copy(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    s1 = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(3)
    assert s1.send(agent.batch(s1.welcome.nonce, first, prev, raws)).ack.last_seq == 3
    s1.close()
    # The ack was lost, say: the agent re-signs the same events for the new session.
    s2 = agentsim.Session(stub, agent)
    assert s2.welcome.last_seq == 3 and s2.welcome.head_hash == agent.head
    answer = s2.send(agent.batch(s2.welcome.nonce, first, prev, raws))
    assert answer.ack.duplicate and answer.ack.last_seq == 3
    s2.close()
    assert collector.count(agent.agent_id) == 3
    assert collector.tampering() == []


def test_partly_resent_batch_stores_only_the_new_tail(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    s = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(4)
    s.send(agent.batch(s.welcome.nonce, first, prev, raws[:2]))
    answer = s.send(agent.batch(s.welcome.nonce, first, prev, raws))
    assert answer.ack.last_seq == 4 and not answer.ack.duplicate
    s.close()
    assert [e["seq"] for e in collector.events(agent.agent_id)] == [1, 2, 3, 4]


def test_batch_signed_with_another_key_is_a_tampering_record(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    other_id, other_key = agentsim.enrol(stub, collector.new_token())
    s = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(2)
    answer = s.send(agent.batch(s.welcome.nonce, first, prev, raws, key=other_key))
    assert answer.reject.reason == "bad_signature"
    s.close()
    assert collector.count(agent.agent_id) == 0
    [record] = collector.tampering(agent.agent_id)
    assert record["kind"] == "bad_signature" and record["evidence_bytes"] > 0
    assert other_id != agent.agent_id


def test_replayed_batch_from_an_old_session_is_a_replay_record(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    s1 = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(3)
    captured = agent.batch(s1.welcome.nonce, first, prev, raws)
    s1.send(captured)
    s1.close()
    s2 = agentsim.Session(stub, agent)
    answer = s2.send(captured)  # the same bytes, signed for the old session's nonce
    assert answer.reject.reason == "replay"
    s2.close()
    assert collector.count(agent.agent_id) == 3
    assert [t["kind"] for t in collector.tampering(agent.agent_id)] == ["replay"]


def test_a_gap_is_recorded_and_the_events_that_arrived_are_kept(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    s = agentsim.Session(stub, agent)
    agent.record(2)  # events 1-2 are never sent
    first, prev, raws, _ = agent.record(3)
    answer = s.send(agent.batch(s.welcome.nonce, first, prev, raws))
    assert answer.ack.last_seq == 5
    s.close()
    assert [e["seq"] for e in collector.events(agent.agent_id)] == [3, 4, 5]
    [record] = collector.tampering(agent.agent_id)
    assert record["kind"] == "gap" and "1..2" in record["detail"]


def test_a_fork_is_rejected_and_recorded(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    s = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(3)
    s.send(agent.batch(s.welcome.nonce, first, prev, raws))
    # Rewrite history: different events 2..3 on top of the real event 1.
    fork = agentsim.SimAgent(agent.agent_id, agent.key, seq=1, head=agent.hashes[0])
    f_first, f_prev, f_raws, _ = fork.record(2, note="rewritten")
    answer = s.send(fork.batch(s.welcome.nonce, f_first, f_prev, f_raws))
    assert answer.reject.reason == "fork"
    s.close()
    assert collector.count(agent.agent_id) == 3
    assert [t["kind"] for t in collector.tampering(agent.agent_id)] == ["fork"]
    assert {e["chain"] for e in collector.events(agent.agent_id)} == {"verified"}


def test_a_batch_that_does_not_continue_the_head_is_a_fork(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    s = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(2)
    s.send(agent.batch(s.welcome.nonce, first, prev, raws))
    wrong = agentsim.SimAgent(agent.agent_id, agent.key, seq=2, head=b"\x00" * 32)
    w_first, w_prev, w_raws, _ = wrong.record(1)
    assert s.send(wrong.batch(s.welcome.nonce, w_first, w_prev, w_raws)).reject.reason == "fork"


def test_unknown_and_revoked_agents_are_refused(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    stranger = agentsim.SimAgent("ag-nobody", Ed25519PrivateKey.generate())
    with pytest.raises(grpc.RpcError) as err:
        agentsim.Session(stub, stranger)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert collector.op("revoke", agent_id=agent.agent_id, reason="lost laptop")["revoked"]
    with pytest.raises(grpc.RpcError) as err:
        agentsim.Session(stub, agent)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "revoked" in (err.value.details() or "")


def test_oversized_message_is_refused_and_the_collector_carries_on(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    s = agentsim.Session(stub, agent)
    huge = agentsim.test_event(1, note="x" * (5 * 1024 * 1024))
    from protos import envelope

    raw = envelope.event_bytes(huge)
    with pytest.raises(grpc.RpcError) as err:
        s.send(agent.batch(s.welcome.nonce, 1, agent.head, [raw]))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    s2 = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(1)
    assert s2.send(agent.batch(s2.welcome.nonce, first, prev, raws)).ack.last_seq == 1


class RawStream:
    """A Ship stream of raw bytes, written one message at a time (to send truncated ones)."""

    def __init__(self, collector: CollectorHarness) -> None:
        chan = agentsim.channel(collector.address, collector.ca_path)
        self._q: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._answers = iter(chan.stream_stream("/safeguard.v1.Collector/Ship")(
            iter(self._q.get, None), timeout=30))  # fmt: skip

    def send(self, raw: bytes) -> None:
        self._q.put(raw)

    def read(self) -> ingest_pb2.CollectorMessage:
        return ingest_pb2.CollectorMessage.FromString(next(self._answers))

    def prove(self, agent: agentsim.SimAgent) -> bytes:
        """Answer the Challenge as the agent; returns the session nonce."""
        nonce = self.read().challenge.nonce
        signature = agent.key.sign(envelope.hello_proof_payload(agent.agent_id, nonce))
        self.send(ingest_pb2.AgentMessage(proof=ingest_pb2.Proof(signature=signature))
                  .SerializeToString())  # fmt: skip
        assert self.read().welcome.nonce == nonce
        return nonce


def test_truncated_messages_are_a_clear_error_or_a_record(
    collector: CollectorHarness, agent: agentsim.SimAgent
) -> None:
    hello = agent.hello().SerializeToString()
    s = RawStream(collector)
    s.send(hello[: len(hello) // 2])
    with pytest.raises(grpc.RpcError) as err:
        s.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Cut short before the stream has proved the key: refused, nothing on the agent's record.
    s = RawStream(collector)
    s.send(hello)
    s.read()  # the Challenge
    s.send(b"\x1a\x42\x0a")
    with pytest.raises(grpc.RpcError) as err:
        s.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert collector.tampering(agent.agent_id) == []

    # Cut short after: the agent's stream sent bytes that are not a batch, which is a record.
    first, prev, raws, _ = agent.record(2)
    s = RawStream(collector)
    s.send(hello)
    nonce = s.prove(agent)
    batch = agent.batch(nonce, first, prev, raws).SerializeToString()
    s.send(batch[: len(batch) - 7])
    assert s.read().reject.reason == "malformed"
    assert collector.count() == 0
    assert [t["kind"] for t in collector.tampering(agent.agent_id)] == ["malformed"]


def test_a_stream_without_the_agents_key_learns_nothing_and_records_nothing(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    s = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(3)
    assert s.send(agent.batch(s.welcome.nonce, first, prev, raws)).ack.last_seq == 3
    s.close()
    # Someone who knows the agent's id but not its key: another enrolled agent's key, then a
    # batch where the proof should be. Neither is told the chain head, neither is a record.
    other_id, other_key = agentsim.enrol(stub, collector.new_token())
    with pytest.raises(grpc.RpcError) as err:
        agentsim.Session(stub, agent, prove_with=other_key)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    s = RawStream(collector)
    s.send(agent.hello().SerializeToString())
    nonce = s.read().challenge.nonce
    s.send(agent.batch(nonce, *agent.record(1)[:3]).SerializeToString())
    with pytest.raises(grpc.RpcError) as err:
        s.read()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert collector.tampering(agent.agent_id) == []
    assert collector.count(agent.agent_id) == 3
    assert other_id != agent.agent_id


def test_a_flood_of_forged_batches_keeps_every_record_but_bounds_the_evidence(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    forger = Ed25519PrivateKey.generate()
    first, prev, raws, _ = agent.record(1, note="x" * 10_000)
    for _ in range(25):
        s = agentsim.Session(stub, agent)
        answer = s.send(agent.batch(s.welcome.nonce, first, prev, raws, key=forger))
        assert answer.reject.reason == "bad_signature"
        s.close()
    records = collector.tampering(agent.agent_id)
    assert len(records) == 25  # every attempt is on record
    kept = [r for r in records if r["evidence_bytes"]]
    # 10 an hour; the run may straddle the turn of an hour, so at most 20 (not all 25).
    assert 10 <= len(kept) <= 20 and all(r["evidence_bytes"] > 10_000 for r in kept)


def test_an_agent_sending_refused_batches_in_a_loop_is_counted_not_stored_row_by_row(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent
) -> None:
    from collector.intake.ingest import RECORDS_PER_HOUR

    forger = Ed25519PrivateKey.generate()
    first, prev, raws, _ = agent.record(1)
    sent = 2 * RECORDS_PER_HOUR + 30  # so one hour overflows even if the run straddles two
    refused = 0
    for _ in range(sent):
        s = agentsim.Session(stub, agent)
        refused += s.send(agent.batch(s.welcome.nonce, first, prev, raws, key=forger)).HasField(
            "reject"
        )
        s.close()
    assert refused == sent  # every batch is refused whatever is stored
    records = collector.tampering(agent.agent_id)
    singles = [r for r in records if r["kind"] != "flood"]
    floods = [r for r in records if r["kind"] == "flood"]
    # Straddling the turn of an hour starts a fresh share (and flood record) for the new hour.
    counted = sum(int(r["detail"].split()[0]) for r in floods)
    assert len(singles) + counted == sent  # none unrecorded
    assert len(singles) <= 2 * RECORDS_PER_HOUR and 1 <= len(floods) <= 2
    assert "further refused batches" in floods[0]["detail"]
    # A genuine batch afterwards is stored as usual.
    s = agentsim.Session(stub, agent)
    assert s.send(agent.batch(s.welcome.nonce, first, prev, raws)).ack.last_seq == 1
    s.close()
