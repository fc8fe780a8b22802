"""Several processes on one outbox, and a writer killed with SIGKILL at arbitrary moments."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.outbox import Outbox
from protos import envelope, events_pb2

pytestmark = pytest.mark.unit

AGENT = "ag-test0000000000000004"
WRITER = Path(__file__).with_name("_outbox_writer.py")
ROOT = Path(__file__).resolve().parents[3]


def writer(path: Path, count: int, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(path), AGENT, str(count), *extra],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def stored_ids(path: Path) -> list[str]:
    """Every event id in the outbox, queued or chained, reading the file directly."""
    with sqlite3.connect(path) as conn:
        bodies = [b for (b,) in conn.execute("SELECT body FROM queued")]
        bodies += [r for (r,) in conn.execute("SELECT raw FROM chained")]
    return [events_pb2.Event.FromString(b).event_id for b in bodies]


def assert_chain_intact(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT seq, raw, hash FROM chained ORDER BY seq").fetchall()
    return envelope.verify_stored_chain(AGENT, rows)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    procs = [writer(path, 200, "--tag", tag) for tag in ("a", "b")]
    reported: list[str] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        reported += out.split()
    assert len(reported) == 400
    assert sorted(stored_ids(path)) == sorted(reported)


def test_a_writer_chaining_while_another_puts(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    procs = [writer(path, 300, "--chain-every", "7"), writer(path, 300, "--tag", "t")]
    reported = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        reported += out.split()
    assert sorted(stored_ids(path)) == sorted(reported)
    assert assert_chain_intact(path) > 0


@pytest.mark.parametrize("round_lines", [[1, 37, 150], [5, 90, 13]])
def test_kill_9_loses_no_committed_event_and_duplicates_none(
    tmp_path: Path, round_lines: list[int]
) -> None:
    path = tmp_path / "outbox.sqlite"
    reported: list[str] = []
    for lines in round_lines:  # each round: start, let it commit some, SIGKILL mid-loop
        proc = writer(path, 0, "--chain-every", "3")
        assert proc.stdout is not None
        for _ in range(lines):
            line = proc.stdout.readline()
            assert line, "writer died early"
            reported.append(line.strip())
        proc.send_signal(signal.SIGKILL)
        # Committed before the kill, printed, not yet read. Read through the same buffered
        # stream (communicate() with a timeout would skip what readline() has buffered).
        reported += proc.stdout.read().split()
        proc.stdout.close()
        assert proc.wait(timeout=60) == -signal.SIGKILL
    box = Outbox.open(path, AGENT)  # reopens cleanly: no recovery needed after a kill
    assert box.counts().pending + box.counts().unacked >= len(reported)
    box.close()
    assert not [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    ids = stored_ids(path)
    assert len(ids) == len(set(ids)), "an event was stored twice"
    missing = set(reported) - set(ids)
    assert not missing, f"{len(missing)} committed events lost"
    # At most one event per round was committed but killed before it was printed.
    assert len(ids) - len(reported) <= len(round_lines)
    assert assert_chain_intact(path) > 0
