"""The single writer on its own: a real DuckDB in a temporary folder."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from collector import enrolment, verifier_worker
from collector.ingest import Ingestor
from collector.paths import DataDir
from collector.store import Store
from collector.verify import VerifiedBatch
from protos import envelope
from tests import agentsim
from tests.harness import init_data

pytestmark = pytest.mark.integration


def test_a_stream_that_goes_away_mid_commit_does_not_stop_the_writer(tmp_path: Path) -> None:
    data: DataDir = init_data(tmp_path / "c")
    store = Store(data.database)
    token = enrolment.new_token(store, 3600, 1)["token"]
    key = agentsim.Ed25519PrivateKey.generate()
    pub = agentsim.raw_key(key)
    agent_id = enrolment.enrol(store, data, enrolment.Applicant(
        token, pub, key.sign(envelope.enrol_proof_payload(token, pub)), "pc", "test", "1"))
    ingestor = Ingestor(store)
    ingestor.start()
    try:
        agent = agentsim.SimAgent(agent_id, key)
        first, prev, raws, _ = agent.record(3)
        nonce = b"n" * 16
        batch = agent.batch(nonce, first, prev, raws).batch
        rows = verifier_worker.check(key.public_key(), nonce, batch.SerializeToString())
        checked = VerifiedBatch(batch, rows)
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
