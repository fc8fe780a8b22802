"""safeguard-collector as a technician runs it: real processes, real files."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from protos import ingest_pb2_grpc
from tests import agentsim
from tests.processes import CollectorProcess, run

pytestmark = pytest.mark.e2e


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "collector"
    run("safeguard-collector", "init", "--data", path)
    return path


@pytest.fixture
def serving(data: Path) -> Iterator[CollectorProcess]:
    proc = CollectorProcess(data)
    proc.start()
    yield proc
    proc.stop()


def test_init_keeps_secrets_private_and_refuses_to_run_twice(data: Path) -> None:
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for secret in (data / "secrets").iterdir():
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert stat.S_IMODE((data / "collector.duckdb").stat().st_mode) == 0o600
    again = run("safeguard-collector", "init", "--data", data, check=False)
    assert again.returncode == 1 and "already initialised" in again.stderr
    assert run("safeguard-collector", "init", "--data", data, "--exist-ok").returncode == 0


def test_commands_work_while_serve_holds_the_database(serving: CollectorProcess) -> None:
    data = serving.data
    token = run("safeguard-collector", "token", "--data", data, "--uses", "2").stdout.strip()
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(serving.address, data / "ca.pem"))
    agent_id, key = agentsim.enrol(stub, token)
    agent = agentsim.SimAgent(agent_id, key)
    s = agentsim.Session(stub, agent)
    first, prev, raws, _ = agent.record(3)
    s.send(agent.batch(s.welcome.nonce, first, prev, raws))
    s.close()
    agents = json.loads(run("safeguard-collector", "agents", "--data", data, "--format",
                            "json").stdout)
    assert [a["agent_id"] for a in agents] == [agent_id] and agents[0]["last_seq"] == 3
    events = [json.loads(line) for line in run(
        "safeguard-collector", "events", "--data", data, "--format", "json").stdout.splitlines()]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert {e["chain"] for e in events} == {"verified"}
    assert "test_alert" in events[0]["event"]
    text = run("safeguard-collector", "events", "--data", data).stdout
    assert "chain=verified" in text
    assert run("safeguard-collector", "revoke", "--data", data, agent_id).returncode == 0
    again = run("safeguard-collector", "revoke", "--data", data, agent_id, check=False)
    assert again.returncode == 1 and "no active agent" in again.stderr


def test_commands_work_when_the_collector_is_not_running(data: Path) -> None:
    token = run("safeguard-collector", "token", "--data", data, "--ttl", "2h",
                "--format", "json").stdout
    assert json.loads(token)["uses"] == 1
    assert "AGENT" in run("safeguard-collector", "agents", "--data", data).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["token", "--ttl", "forever"],
        ["token", "--uses", "0"],
        ["token", "--ttl", "0s"],
    ],
)
def test_bad_input_is_a_clear_message_and_non_zero_exit(data: Path, args: list[str]) -> None:
    result = run("safeguard-collector", args[0], "--data", data, *args[1:], check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and result.stderr.strip()


def test_a_folder_that_is_not_a_collector_is_named(tmp_path: Path) -> None:
    result = run("safeguard-collector", "agents", "--data", tmp_path, check=False)
    assert result.returncode == 1 and "not a collector data folder" in result.stderr
    run("safeguard-collector", "init", "--data", tmp_path / "collector")
    wrong = run("safeguard-collector", "agents", "--data", tmp_path, check=False)
    assert f"did you mean --data {tmp_path / 'collector'}" in wrong.stderr


def test_a_corrupt_database_is_refused_kept_and_recovered(data: Path) -> None:
    token = run("safeguard-collector", "token", "--data", data).stdout.strip()
    proc = CollectorProcess(data)
    proc.start()
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(proc.address, data / "ca.pem"))
    agent_id, key = agentsim.enrol(stub, token)
    proc.stop()
    db = data / "collector.duckdb"
    db.write_bytes(b"this is not a database" * 100)
    refused = run("safeguard-collector", "serve", "--data", data, "--listen",
                  "127.0.0.1:0", check=False)
    assert refused.returncode == 1
    assert "cannot be opened" in refused.stderr and "recover" in refused.stderr
    assert db.read_bytes().startswith(b"this is not a database")  # left untouched
    out = run("safeguard-collector", "recover", "--data", data).stdout
    kept = [p for p in data.iterdir() if ".damaged-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not")
    assert "1 enrolled agents" in out
    # The agent is still enrolled and can ship into the new database.
    proc.start()
    try:
        stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(proc.address, data / "ca.pem"))
        agent = agentsim.SimAgent(agent_id, key)
        s = agentsim.Session(stub, agent)
        first, prev, raws, _ = agent.record(2)
        assert s.send(agent.batch(s.welcome.nonce, first, prev, raws)).ack.last_seq == 2
        s.close()
    finally:
        proc.stop()


def test_sigkill_mid_stream_loses_nothing_and_stores_nothing_twice(data: Path) -> None:
    """Agents keep streaming while the collector is killed -9 and restarted; they resume from
    the Welcome's head and every event is stored exactly once."""
    token = run("safeguard-collector", "token", "--data", data, "--uses", "4").stdout.strip()
    proc = CollectorProcess(data)
    proc.start()
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(proc.address, data / "ca.pem"))
    agents = [agentsim.SimAgent(*agentsim.enrol(stub, token)) for _ in range(4)]
    per_agent, batch = 6000, 200
    for a in agents:
        a.record(per_agent)
    acked = {a.agent_id: 0 for a in agents}
    killed = threading.Event()

    def stream(agent: agentsim.SimAgent) -> None:
        import grpc

        while acked[agent.agent_id] < per_agent:
            try:
                chan = agentsim.channel(proc.address, data / "ca.pem")
                s = agentsim.Session(ingest_pb2_grpc.CollectorStub(chan), agent)
                done = s.welcome.last_seq
                acked[agent.agent_id] = done
                while done < per_agent:
                    last = min(per_agent, done + batch)
                    prev = agent.hashes[done - 1] if done else agent.head_at_genesis()
                    answer = s.send(agent.batch(s.welcome.nonce, done + 1, prev,
                                                agent.raws[done:last]))
                    assert answer.WhichOneof("msg") == "ack", answer
                    done = acked[agent.agent_id] = answer.ack.last_seq
                s.close()
            except grpc.RpcError:
                killed.wait(30)  # the collector is down: wait for the restart, then resume

    threads = [threading.Thread(target=stream, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    # Kill once some but not all events are in: mid-stream, batches in flight.
    while sum(acked.values()) < per_agent:
        threading.Event().wait(0.01)
    proc.kill()
    partial = sum(acked.values())
    proc.start()
    killed.set()
    for t in threads:
        t.join(120)
    proc.stop()
    assert partial < per_agent * len(agents)
    counts = json.loads(run("safeguard-collector", "agents", "--data", data,
                            "--format", "json").stdout)
    assert {a["last_seq"] for a in counts} == {per_agent}
    events = run("safeguard-collector", "events", "--data", data, "--limit", "1000000",
                 "--format", "json").stdout.splitlines()
    seen = [(e["agent_id"], e["seq"]) for e in map(json.loads, events)]
    assert len(seen) == len(set(seen)) == per_agent * len(agents)
    no_records = run("safeguard-collector", "tampering", "--data", data).stdout
    assert no_records == "no tampering records\n"
