"""A damaged collector database (issue 15, finding 3): refused at start, named by the read
commands, and salvaged by `recover` so the PCs resend only what was lost.

Real damage on real files: a database of real agents' chained events, truncated, with a zeroed
4 KiB block, or with a flipped byte, then `safeguard-collector` run as its own process.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import pytest

from collector.paths import DataDir
from collector.storage.store import Store
from protos import envelope, ingest_pb2_grpc
from tests import agentsim
from tests.harness import CollectorHarness
from tests.processes import run

pytestmark = pytest.mark.integration

BATCH = 2_000


def store_directly(data: DataDir, agent: agentsim.SimAgent, n: int) -> None:
    """n more chained events of `agent`, written as the writer writes them (in batches of
    BATCH, with their batch rows and the head), but straight into the stopped collector's
    database: tens of thousands of events in seconds."""
    store = Store(data.database)
    try:
        for start in range(0, n, BATCH):
            first, prev, raws, hashes = agent.record(min(BATCH, n - start))
            count = len(raws)
            store.append_events({
                "agent_id": [agent.agent_id] * count, "seq": list(range(first, first + count)),
                "event_id": [f"e{first + i}" for i in range(count)], "kind": ["test_alert"] * count,
                "severity": [1] * count, "account": ["pupil"] * count,
                "observed_ms": [1_700_000_000_000 + first + i for i in range(count)],
                "received_ms": [1_700_000_000_000 + first + i for i in range(count)],
                "raw": raws, "hash": hashes,
            })  # fmt: skip
            nonce = os.urandom(envelope.NONCE_LEN)
            signed = envelope.make_batch(agent.key, agent.agent_id, nonce, first, prev, raws,
                                         hashes)  # fmt: skip
            store.append_batches([(agent.agent_id, first, first + count - 1, prev, hashes[-1],
                                   nonce, signed.signature, 1_700_000_000_000)])  # fmt: skip
        store.set_heads([(agent.seq, agent.head, 1_700_000_000_000, agent.agent_id)])
        store.con.execute("CHECKPOINT")
    finally:
        store.close()


@pytest.fixture
def filled(collector: CollectorHarness) -> tuple[CollectorHarness, list[agentsim.SimAgent]]:
    """A stopped collector holding 3 agents' 40,000 events each (one batch each shipped over
    gRPC first, so the agents are enrolled and known the real way)."""
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    agents = [agentsim.SimAgent(*agentsim.enrol(stub, collector.new_token())) for _ in range(3)]
    for agent in agents:
        assert agentsim.resend(stub, agent, agent.record(5)[:3]) == (0, [5])
    collector.stop()
    for agent in agents:
        store_directly(collector.data, agent, 40_000)
    return collector, agents


def zero_block(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"\0" * 4096)


def middle(path: Path) -> int:
    """An offset inside a block that holds the events' raw bytes, halfway through them (a
    block's place: DuckDB's 3 header blocks of 4 KiB, then 256 KiB blocks by id)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        blocks = [r[0] for r in con.execute(
            "SELECT block_id FROM pragma_storage_info('events') WHERE column_name = 'raw' "
            "AND persistent ORDER BY row_group_id, segment_id").fetchall()]  # fmt: skip
    finally:
        con.close()
    return 3 * 4096 + blocks[len(blocks) // 2] * 256 * 1024 + 8192


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def flip_byte(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(middle(path) + 1234)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


DAMAGE = {
    "truncated to half": truncate,
    "a zeroed 4 KiB block": lambda p: zero_block(p, middle(p)),
    "a flipped byte": flip_byte,
}


def assert_plain_refusal(result: object, database: Path) -> None:
    code, err = result.returncode, result.stderr  # type: ignore[attr-defined]
    assert code != 0
    assert "Traceback" not in err, err
    assert f"{database} is damaged" in err, err
    assert "safeguard-collector restore" in err and "safeguard-collector recover" in err, err


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_serve_refuses_a_damaged_database_and_the_read_commands_say_why(
    filled: tuple[CollectorHarness, list[agentsim.SimAgent]], damage: str
) -> None:
    collector, _ = filled
    database = collector.data.database
    DAMAGE[damage](database)
    served = run("safeguard-collector", "serve", "--data", collector.data_dir, "--listen",
                 "127.0.0.1:0", check=False)  # fmt: skip
    assert_plain_refusal(served, database)
    assert "collector ready" not in served.stdout  # nothing listened, nothing was acknowledged
    events = run("safeguard-collector", "events", "--data", collector.data_dir, "--limit",
                 "200000", check=False)  # fmt: skip
    assert_plain_refusal(events, database)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_recover_salvages_what_reads_and_the_pcs_resend_only_what_was_lost(
    filled: tuple[CollectorHarness, list[agentsim.SimAgent]],
) -> None:
    collector, agents = filled
    database = collector.data.database
    zero_block(database, middle(database))
    damaged = sha256(database)

    out = run("safeguard-collector", "recover", "--data", collector.data_dir).stdout
    aside = next(collector.data_dir.glob("collector.duckdb.damaged-*"))
    assert sha256(aside) == damaged  # kept aside, untouched
    assert f"kept the damaged database aside, untouched: {aside}" in out
    events_line = next(line for line in out.splitlines() if line.strip().startswith("events:"))
    salvaged = int(events_line.split()[1].replace(",", ""))
    lost = int(events_line.split("salvaged, ")[1].split()[0].replace(",", ""))
    assert lost > 0 and salvaged > 60_000, out  # a block's worth lost, not the table
    assert "head set to seq" in out

    collector.start()  # the new database passes the full check at start
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    for agent in agents:
        again = agentsim.Session(stub, agent)
        head = again.welcome.last_seq
        assert head <= agent.seq
        for start in range(head, agent.seq, BATCH):
            raws = agent.raws[start : start + BATCH]
            prev = agent.hashes[start - 1] if start else agent.head_at_genesis()
            answer = again.send(agent.batch(again.welcome.nonce, start + 1, prev, raws))
            assert answer.ack.last_seq == start + len(raws), answer
        again.close()
    # Every event back once, in one unbroken chain per agent, and no gap or fork recorded.
    assert collector.tampering() == []
    for agent in agents:
        seqs = collector.with_store(lambda s, a=agent.agent_id: [r[0] for r in s.con.execute(
            "SELECT seq FROM events WHERE agent_id = ? ORDER BY seq", [a]).fetchall()])  # fmt: skip
        assert seqs == list(range(1, agent.seq + 1))
        checked = collector.op("events", agent_id=agent.agent_id, limit=agent.seq)
        assert {e["chain"] for e in checked} == {"verified"}


def test_recover_on_a_healthy_database_changes_nothing(
    filled: tuple[CollectorHarness, list[agentsim.SimAgent]],
) -> None:
    collector, _ = filled
    before = sha256(collector.data.database)
    out = run("safeguard-collector", "recover", "--data", collector.data_dir).stdout
    assert "nothing to recover" in out
    assert sha256(collector.data.database) == before
    assert not list(collector.data_dir.glob("collector.duckdb.damaged-*"))
