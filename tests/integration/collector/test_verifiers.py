"""Verifier processes under a real collector: batches checked in parallel, stored in order,
and a verifier killed while it holds batches loses nothing and forges no gap.

The verifiers are stopped (SIGSTOP) so a batch waits in one's pipe; which one holds it is read
from the pipe itself (FIONREAD on /proc/PID/fd/0), so nothing here depends on timing.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from protos import ingest_pb2_grpc
from tests import agentsim
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorHarness]:
    harness = CollectorHarness(tmp_path / "collector")
    harness.verifiers = 2
    harness.start()
    try:
        yield harness
    finally:
        for pid in harness.running.verifiers.pids():
            os.kill(pid, signal.SIGCONT)  # a stopped verifier would hold up the shutdown
        harness.stop()


def queued_bytes(pid: int) -> int:
    """Bytes written to a verifier's stdin that it has not read yet."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])
    finally:
        os.close(fd)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def holder(pids: list[int], exclude: frozenset[int] = frozenset()) -> int:
    """The stopped verifier whose pipe a batch has just been written to."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pid in pids:
            if pid not in exclude and queued_bytes(pid) > 0:
                return pid
        time.sleep(0.01)
    raise AssertionError("no verifier was handed the batch")


def stopped_verifiers(
    collector: CollectorHarness,
) -> tuple[ingest_pb2_grpc.CollectorStub, agentsim.SimAgent, agentsim.Session, list[int]]:
    """An enrolled agent with its stream open, and the verifiers stopped (their pids)."""
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    agent = agentsim.SimAgent(*agentsim.enrol(stub, collector.new_token()))
    session = agentsim.Session(stub, agent)
    pids = collector.running.verifiers.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return stub, agent, session, pids


def test_a_batch_checked_after_the_one_behind_it_is_still_stored_in_order(
    collector: CollectorHarness,
) -> None:
    _, agent, session, pids = stopped_verifiers(collector)
    nonce = session.welcome.nonce
    first = agent.batch(nonce, *agent.record(3)[:3])
    second = agent.batch(nonce, *agent.record(3)[:3])
    session.post(first)
    slow = holder(pids)
    session.post(second)
    fast = holder(pids, exclude=frozenset({slow}))
    # The second batch is checked first and must wait: stored before the first, it would be
    # a gap at seqs 1..3 and then a fork.
    os.kill(fast, signal.SIGCONT)
    verifiers = collector.running.verifiers
    wait_for(lambda: verifiers.held()[fast] == 0, "the second batch's check")
    os.kill(slow, signal.SIGCONT)
    assert session.answer().ack.last_seq == 3
    assert session.answer().ack.last_seq == 6
    session.close()
    assert [e["seq"] for e in collector.events(agent.agent_id)] == [1, 2, 3, 4, 5, 6]
    assert collector.tampering() == []


def test_a_verifier_killed_holding_a_batch_loses_nothing_and_forges_no_gap(
    collector: CollectorHarness,
) -> None:
    stub, agent, session, pids = stopped_verifiers(collector)
    nonce = session.welcome.nonce
    first_args = agent.record(3)[:3]
    second_args = agent.record(3)[:3]
    session.post(agent.batch(nonce, *first_args))
    doomed = holder(pids)
    session.post(agent.batch(nonce, *second_args))
    survivor = holder(pids, exclude=frozenset({doomed}))
    os.kill(survivor, signal.SIGCONT)  # the second batch checks out, and waits for the first
    os.kill(doomed, signal.SIGKILL)
    with pytest.raises(grpc.RpcError) as failed:
        session.answer()
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "send it again" in (failed.value.details() or "")
    # Neither batch was stored: the second, though checked, would have left seqs 1..3 a gap.
    assert collector.count(agent.agent_id) == 0
    assert collector.tampering() == []
    # A fresh verifier takes the dead one's place (waited for: under load its start can
    # outlast a resend's deadline); the agent then sends both again.
    verifiers = collector.running.verifiers
    wait_for(lambda: verifiers.restarts == 1 and len(verifiers.pids()) == 2,
             "the dead verifier's replacement")
    assert agentsim.resend(stub, agent, first_args, second_args) == (0, [3, 6])
    assert [e["seq"] for e in collector.events(agent.agent_id)] == [1, 2, 3, 4, 5, 6]
    assert collector.tampering() == []
    assert doomed not in verifiers.pids() and len(verifiers.pids()) == 2


def test_the_collector_runs_the_verifiers_and_duckdb_threads_it_is_sized_for(
    collector: CollectorHarness,
) -> None:
    from collector import app

    assert len(collector.running.verifiers.pids()) == 2
    threads = collector.running.ingestor.call(
        lambda s: s.con.execute("SELECT current_setting('threads')").fetchone()
    ).result(30)
    assert threads == (app.DUCKDB_THREADS,)
