"""The single writer on its own: a real DuckDB in a temporary folder."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from collector.intake import enrolment, verifier_worker
from collector.intake.ingest import Committed, Ingestor
from collector.integrity.verify import VerifiedBatch
from collector.paths import DataDir
from collector.storage.store import Store
from protos import envelope
from tests import agentsim
from tests.harness import init_data

pytestmark = pytest.mark.integration


NONCE = b"n" * 16


def enrolled(tmp_path: Path) -> tuple[Store, agentsim.SimAgent]:
    data: DataDir = init_data(tmp_path / "c")
    store = Store(data.database)
    token = enrolment.new_token(store, 3600, 1)["token"]
    key = agentsim.Ed25519PrivateKey.generate()
    pub = agentsim.raw_key(key)
    agent_id = enrolment.enrol(store, data, enrolment.Applicant(
        token, pub, key.sign(envelope.enrol_proof_payload(token, pub)), "pc", "test", "1"))
    return store, agentsim.SimAgent(agent_id, key)


def verified(agent: agentsim.SimAgent, n: int) -> VerifiedBatch:
    """The agent's next n events as a batch a verifier has checked."""
    first, prev, raws, _ = agent.record(n)
    batch = agent.batch(NONCE, first, prev, raws).batch
    rows = verifier_worker.check(agent.key.public_key(), NONCE, batch.SerializeToString())
    return VerifiedBatch(batch, rows)


@pytest.mark.parametrize("threads", [1, 3])
def test_the_store_gives_duckdb_the_threads_it_is_asked_for(tmp_path: Path, threads: int) -> None:
    store = Store(init_data(tmp_path / "c").database, threads=threads)
    try:
        assert store.con.execute("SELECT current_setting('threads')").fetchone() == (threads,)
    finally:
        store.close()


def test_a_stream_that_goes_away_mid_commit_does_not_stop_the_writer(tmp_path: Path) -> None:
    store, agent = enrolled(tmp_path)
    agent_id = agent.agent_id
    ingestor = Ingestor(store)
    ingestor.start()
    try:
        checked = verified(agent, 3)
        nonce = NONCE
        hold = threading.Event()
        blocker = ingestor.call(lambda _: hold.wait(30))  # keeps the writer busy
        gone = ingestor.submit(checked, nonce)
        assert gone.cancel()  # what grpc.aio does to a killed agent's pending answer
        hold.set()
        assert blocker.result(30)
        # The writer is alive, and the batch was committed all the same.
        assert ingestor.call(lambda s: s.count_events(agent_id)).result(30) == 3
    finally:
        ingestor.stop()
        store.close()


def test_a_call_sees_what_the_engine_made_of_every_acknowledged_batch(tmp_path: Path) -> None:
    """The engine judges on its own thread while the writer goes on; a call (a DSL's triage,
    a test's query) must still wait until every commit before it has been judged."""
    store, agent = enrolled(tmp_path)
    ingestor = Ingestor(store)
    judging, call_started = threading.Event(), threading.Event()
    judged: list[int] = []

    def slow_engine(_: Store, committed: Committed) -> None:
        judging.set()
        # Without the wait, the call below starts while this runs: give it the chance.
        call_started.wait(2)
        judged.append(committed.events.num_rows if committed.events is not None else 0)

    def query(_: Store) -> list[int]:
        call_started.set()
        return list(judged)

    ingestor.after_commit.append(slow_engine)
    ingestor.start()
    try:
        ack = ingestor.submit(verified(agent, 4), NONCE).result(30)
        assert ack.ack.last_seq == 4  # acknowledged once committed, before it is judged
        assert judging.wait(30)
        assert ingestor.call(query).result(30) == [4]
    finally:
        ingestor.stop()
        store.close()


def test_stopping_judges_what_was_committed(tmp_path: Path) -> None:
    store, agent = enrolled(tmp_path)
    ingestor = Ingestor(store)
    judged: list[int] = []
    ingestor.after_commit.append(lambda _, c: judged.append(c.events.num_rows))
    ingestor.start()
    futures = [ingestor.submit(verified(agent, 2), NONCE) for _ in range(5)]
    ingestor.stop()
    assert [f.result(0).ack.last_seq for f in futures] == [2, 4, 6, 8, 10]
    assert sum(judged) == 10
    store.close()
