"""The collector measures a PC's clock from each stream's Hello (collector/intake/clock.py): a skew
beyond the limit is told back in the Welcome, flagged on every event of that stream and on the
agent's record, counted as degraded coverage, and an event's time is shown corrected by it.
Real TLS gRPC and DuckDB; the agent is the protocol-level simulator with its clock offset."""

from __future__ import annotations

import time
from typing import Any

import pytest

from collector.console.views_school import agents_view
from collector.incidents import queries
from collector.storage.store import Store
from protos import ingest_pb2_grpc
from tests import agentsim
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration
TWO_HOURS_MS = 2 * 3600 * 1000
LIMIT_MS = 5 * 60_000


@pytest.fixture
def stub(collector: CollectorHarness) -> ingest_pb2_grpc.CollectorStub:
    return ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))


def ship_one_session(stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent,
                     n: int = 3) -> agentsim.Session:  # fmt: skip
    session = agentsim.Session(stub, agent)
    answer = session.send(agent.batch(session.welcome.nonce, *agent.record(n)[:2],
                                      agent.raws[-n:]))  # fmt: skip
    assert answer.WhichOneof("msg") == "ack"
    session.close()
    return session


def skews(collector: CollectorHarness, agent_id: str) -> list[int | None]:
    def read(store: Store) -> list[int | None]:
        rows = store.con.execute(
            "SELECT clock_skew_ms FROM events WHERE agent_id = ? ORDER BY seq", [agent_id]
        ).fetchall()
        return [r[0] for r in rows]

    return collector.with_store(read)


def near(value: int | None, expected: int) -> bool:
    return value is not None and abs(value - expected) < 60_000


def test_a_skewed_stream_is_told_flagged_and_its_agent_counted_degraded(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    agent_id, key = agentsim.enrol(stub, collector.new_token())
    agent = agentsim.SimAgent(agent_id, key, clock_offset_ms=TWO_HOURS_MS)
    welcome = ship_one_session(stub, agent).welcome
    assert welcome.clock_measured and near(welcome.clock_skew_ms, TWO_HOURS_MS)
    assert welcome.clock_skew_limit_ms == LIMIT_MS
    assert all(near(s, TWO_HOURS_MS) for s in skews(collector, agent_id))

    row = collector.op("agents")[0]
    assert row["clock_skewed"] and near(row["clock_skew_ms"], TWO_HOURS_MS)
    view = collector.with_store(lambda s: agents_view(s.con, 3_600_000, LIMIT_MS))
    assert (view["expected"], view["reporting"], view["degraded"]) == (1, 1, 1)
    assert view["agents"][0]["clock"] == "2 h 0 min ahead" or "1 h 59 min" in view["agents"][0][
        "clock"]

    # The PC's clock set right: the next stream is measured again and nothing more is flagged.
    agent.clock_offset_ms = 20_000
    ship_one_session(stub, agent)
    assert skews(collector, agent_id)[-1] is None and near(skews(collector, agent_id)[0],
                                                           TWO_HOURS_MS)  # fmt: skip
    assert not collector.op("agents")[0]["clock_skewed"]
    view = collector.with_store(lambda s: agents_view(s.con, 3_600_000, LIMIT_MS))
    assert view["degraded"] == 0


def test_an_agent_that_says_no_clock_is_not_flagged(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    agent_id, key = agentsim.enrol(stub, collector.new_token())
    welcome = ship_one_session(stub, agentsim.SimAgent(agent_id, key)).welcome
    assert not welcome.clock_measured
    assert skews(collector, agent_id) == [None] * 3
    assert collector.op("agents")[0]["clock_skew_ms"] is None


def test_the_evidence_shows_a_skewed_events_time_by_the_collectors_clock(
    collector: CollectorHarness, stub: ingest_pb2_grpc.CollectorStub
) -> None:
    agent_id, key = agentsim.enrol(stub, collector.new_token())
    agent = agentsim.SimAgent(agent_id, key, clock_offset_ms=-3 * 86_400_000)
    ship_one_session(stub, agent, n=1)  # a test alert: the engine makes a candidate of it

    def evidence(store: Store) -> list[dict[str, Any]]:
        found = store.con.execute("SELECT id FROM incidents WHERE agent_id = ?",
                                  [agent_id]).fetchall()  # fmt: skip
        return queries.evidence(store.con, found[0][0]) if found else []

    deadline = time.monotonic() + 60
    while not (sigs := collector.with_store(evidence)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sigs, "no candidate for the test alert"
    s = sigs[0]
    assert near(s["clock_skew_ms"], -3 * 86_400_000) and s["clock"].endswith("behind")
    assert s["corrected_ms"] == s["observed_ms"] - s["clock_skew_ms"]
    assert s["received_ms"] is not None
