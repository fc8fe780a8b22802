"""`safeguard-collector backup` and `restore` (issue 15, finding 6): a backup made while the
collector serves, checked, kept secret; a restore that keeps the current database aside and
leaves each PC to resend what it holds after the restored head.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.outbox import Outbox
from protos import events_pb2, ingest_pb2_grpc
from tests import agentsim
from tests.harness import CollectorHarness
from tests.processes import BIN, CollectorProcess, run

pytestmark = pytest.mark.integration


def ship(stub: ingest_pb2_grpc.CollectorStub, agent: agentsim.SimAgent, n: int) -> int:
    """n new events in one batch; returns the acknowledged seq."""
    return agentsim.resend(stub, agent, agent.record(n)[:3])[1][0]


def test_backup_while_serving_then_restore_and_the_pc_resends_from_the_restored_head(
    collector: CollectorHarness, tmp_path: Path
) -> None:
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    agent = agentsim.SimAgent(*agentsim.enrol(stub, collector.new_token()))
    assert ship(stub, agent, 30) == 30
    folder = tmp_path / "backup"
    out = run("safeguard-collector", "backup", "--data", collector.data_dir, "--to", folder).stdout
    assert "checked: the backup opens and every table reads in full" in out
    assert "events 30" in out
    # Secret: the folder is the owner's alone, and so is every file in it.
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
    names = {str(p.relative_to(folder)) for p in files}
    assert {"collector.duckdb", "backup.json", "node/ca.pem", "node/secrets/ca.key",
            "node/secrets/server.key", "node/tls/server.pem", "node/secrets/policy.key",
            "node/agents.jsonl", "node/collector-id"} <= names  # fmt: skip

    assert ship(stub, agent, 20) == 50  # acknowledged after the backup
    refused = run("safeguard-collector", "restore", "--data", collector.data_dir, "--from", folder,
                  check=False)  # fmt: skip
    assert refused.returncode == 1 and "stop it first" in refused.stderr
    collector.stop()
    before = collector.data.database.read_bytes()
    out = run("safeguard-collector", "restore", "--data", collector.data_dir, "--from",
              folder).stdout  # fmt: skip
    aside = next(collector.data_dir.glob("collector.duckdb.before-restore-*"))
    assert aside.read_bytes() == before  # the replaced database is kept, untouched
    assert "sends again" in out

    collector.start()
    head, acks = agentsim.resend(stub, agent, (31, agent.hashes[29], agent.raws[30:50]))
    assert (head, acks) == (30, [50])  # told the restored head; the 20 come back
    assert [e["seq"] for e in collector.events(agent.agent_id)] == list(range(1, 51))
    assert collector.tampering() == []


def test_restore_into_an_empty_folder_rebuilds_the_node(
    collector: CollectorHarness, tmp_path: Path
) -> None:
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    agent = agentsim.SimAgent(*agentsim.enrol(stub, collector.new_token()))
    ship(stub, agent, 5)
    collector.stop()  # backed up straight from the database, no collector running
    run("safeguard-collector", "backup", "--data", collector.data_dir, "--to", tmp_path / "bk")
    new = tmp_path / "new-node"
    run("safeguard-collector", "restore", "--data", new, "--from", tmp_path / "bk")
    assert (new / "ca.pem").read_bytes() == collector.data.ca_cert.read_bytes()
    assert stat.S_IMODE((new / "ca.pem").stat().st_mode) == 0o644  # public, as init made it
    assert stat.S_IMODE((new / "secrets" / "ca.key").stat().st_mode) == 0o600
    agents = json.loads(run("safeguard-collector", "agents", "--data", new, "--format",
                            "json").stdout)  # fmt: skip
    assert [(a["agent_id"], a["last_seq"]) for a in agents] == [(agent.agent_id, 5)]


def test_a_damaged_backup_is_refused_before_anything_moves(
    collector: CollectorHarness, tmp_path: Path
) -> None:
    collector.stop()
    folder = tmp_path / "bk"
    run("safeguard-collector", "backup", "--data", collector.data_dir, "--to", folder)
    (folder / "collector.duckdb").write_bytes((folder / "collector.duckdb").read_bytes()[:8192])
    before = collector.data.database.read_bytes()
    out = run("safeguard-collector", "restore", "--data", collector.data_dir, "--from", folder,
              check=False)  # fmt: skip
    assert out.returncode == 1 and "is damaged" in out.stderr and "Traceback" not in out.stderr
    assert collector.data.database.read_bytes() == before
    assert not list(collector.data_dir.glob("collector.duckdb.before-restore-*"))


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_nothing_acknowledged_since_the_backup_is_lost_with_a_real_agent(tmp_path: Path) -> None:
    data, state = tmp_path / "collector", tmp_path / "agent"
    run("safeguard-collector", "init", "--data", data)
    serve = CollectorProcess(data)
    serve.start()
    agent: subprocess.Popen[str] | None = None
    try:
        token = run("safeguard-collector", "token", "--data", data).stdout
        run("safeguard-agent", "enroll", "--state", state, "--collector", serve.address,
            "--token-file", "-", "--ca", data / "ca.pem", stdin=token)  # fmt: skip
        agent_id = json.loads((state / "identity.json").read_text())["agent_id"]

        def put(n: int) -> None:
            box = Outbox.open(state / "outbox.sqlite", agent_id)
            try:
                for _ in range(n):
                    box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert()))
            finally:
                box.close()

        def alerts() -> int:
            out = run("safeguard-collector", "events", "--data", data, "--agent", agent_id,
                      "--limit", "100000", "--format", "json").stdout  # fmt: skip
            return sum("test_alert" in json.loads(line)["event"] for line in out.splitlines())

        agent = subprocess.Popen([str(BIN / "safeguard-agent"), "run", "--state", str(state),
                                  "--log-level", "warning"], text=True)  # fmt: skip
        put(10)
        wait_until(lambda: alerts() == 10, "the first 10 events")
        run("safeguard-collector", "backup", "--data", data, "--to", tmp_path / "bk")
        put(20)
        wait_until(lambda: alerts() == 30, "20 more, acknowledged after the backup")
        serve.stop()
        run("safeguard-collector", "restore", "--data", data, "--from", tmp_path / "bk")
        serve.start()
        put(1)  # once this one is stored, the agent has shipped past the restored head
        wait_until(lambda: alerts() >= 11, "the agent shipping again")
        wait_until(lambda: alerts() == 31, "the 20 sent again", timeout=60)
        assert json.loads(run("safeguard-collector", "tampering", "--data", data, "--format",
                              "json").stdout or "[]") == []  # fmt: skip
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(60)
        serve.stop()
