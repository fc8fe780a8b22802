"""A school in miniature for the chaos suite: real processes, a steerable network, a count.

    Writer ─puts─▶ outbox ◀─ safeguard-agent run ──▶ Proxy ──▶ safeguard-collector serve
                   (agent/, maybe a tmpfs,                     (collector/, maybe a tmpfs)
                    maybe a faked clock)

The agent is enrolled through the proxy, so every byte it sends crosses the test's network.
`produced` holds the ids whose put was reported committed; `in_doubt` counts puts that failed
or were killed in flight (each may or may not have committed). `tally()` asks the collector
what it stored (`safeguard-collector events --format json`) and `check()` holds the promise:
every produced event stored, none twice, no more extras than puts in doubt, no tampering.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agent.outbox import Outbox
from protos import events_pb2
from tests.chaos.clock import Clock
from tests.chaos.disk import Tmpfs
from tests.chaos.netfilter import Partition
from tests.chaos.proxy import Proxy

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def run(*args: str | Path, stdin: str | None = None, timeout: float = 300) -> str:
    argv = [str(BIN / str(args[0])), *map(str, args[1:])]
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                            check=False)  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"{args[:2]} exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def seed_from_env(default: int | None = None) -> int:
    """CHAOS_SEED if set, else `default`, else a fresh one (printed by the caller)."""
    text = os.environ.get("CHAOS_SEED")
    if text:
        return int(text)
    return default if default is not None else random.SystemRandom().randrange(1 << 32)


class Collector:
    """`safeguard-collector serve` on a port that stays the same across restarts."""

    def __init__(self, data: Path, log: Path) -> None:
        self.data, self.log, self.port = data, log, 0
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("a") as err:
            self.proc = subprocess.Popen(
                [str(BIN / "safeguard-collector"), "serve", "--data", str(self.data),
                 "--listen", f"127.0.0.1:{self.port}", "--verifiers", "1"],
                stdout=subprocess.PIPE, stderr=err, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not match:
            self.proc.wait(30)
            raise AssertionError(f"the collector did not start: {line!r}; log: {self.tail()}")
        self.port = int(match.group(1))
        self.starts += 1
        # Nobody reads its stdout from here on; a full pipe must not stall it.
        self._drain = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self._drain.start()

    def kill(self) -> None:
        self._end(kill=True)

    def stop(self) -> None:
        self._end(kill=False)

    def _end(self, kill: bool) -> None:
        if self.proc is None:
            return
        (self.proc.kill if kill else self.proc.terminate)()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self._drain.join(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class Agent:
    """`safeguard-agent run`, optionally under a shifted clock; exits are noticed."""

    def __init__(self, state: Path, log: Path) -> None:
        self.state, self.log = state, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.clock: Clock | None = None

    def start(self) -> None:
        args = ["run", "--state", str(self.state), "--log-level", "info"]
        env = dict(os.environ)
        if self.clock is None:
            argv = [str(BIN / "safeguard-agent"), *args]
        else:
            argv = [str(BIN / "python"), "-m", "tests.chaos.faketime_agent", *args]
            env.update(self.clock.env())
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, cwd=REPO)

    def kill(self) -> None:
        self._end(kill=True)

    def stop(self) -> None:
        self._end(kill=False)

    def _end(self, kill: bool) -> None:
        if self.proc is None:
            return
        (self.proc.kill if kill else self.proc.terminate)()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Writer:
    """tests/chaos/writer.py in its own process; collects the ids it reports committed."""

    def __init__(self, outbox: Path, agent_id: str) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "python"), "-m", "tests.chaos.writer", str(outbox), agent_id],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
        )
        self.ids: set[str] = set()
        self.failed = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("ok "):
                self.ids.add(line[3:].strip())
            elif line.startswith("failed"):
                self.failed += 1

    def kill(self) -> None:
        """SIGKILL, possibly mid-put: one put in doubt."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self._reader.join(30)
        if self.proc.stdout:
            self.proc.stdout.close()


@dataclass
class Tally:
    produced: int
    stored: int
    twice: int
    missing: set[str]
    extra: int
    in_doubt: int

    def line(self) -> str:
        return (f"produced={self.produced} stored={self.stored} twice={self.twice} "
                f"missing={len(self.missing)} extra={self.extra} in_doubt={self.in_doubt}")


@dataclass
class Faults:
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, kind: str) -> None:
        self.counts[kind] += 1


class ChaosSite:
    def __init__(self, root: Path, seed: int, *, collector_disk_mb: int | None = None,
                 agent_disk_mb: int | None = None) -> None:
        self.root, self.seed = root, seed
        self.rng = random.Random(seed)
        self.data, self.state = root / "collector", root / "agent"
        self.faults = Faults()
        self.produced: set[str] = set()
        self.in_doubt = 0
        self.allowed_lost: set[str] = set()  # only damage that destroyed a row's every copy
        self.dropped: set[str] = set()  # or the outbox's bound (bench/chaos.py's outage)
        self.writers: list[Writer] = []
        self.partition: Partition | None = None
        self.mounts: dict[str, Tmpfs] = {}
        self.collector: Collector | None = None
        self.proxy: Proxy | None = None
        self.agent: Agent | None = None
        if collector_disk_mb:
            self.mounts["collector"] = Tmpfs(self.data, collector_disk_mb)
        if agent_disk_mb:
            self.mounts["agent"] = Tmpfs(self.state, agent_disk_mb)
        run("safeguard-collector", "init", "--data", self.data)
        self.collector = Collector(self.data, root / "collector.log")
        self.collector.start()
        self.proxy = Proxy(self.collector.port)
        token = run("safeguard-collector", "token", "--data", self.data)
        run("safeguard-agent", "enroll", "--state", self.state, "--collector",
            self.proxy.address, "--token-file", "-", "--ca", self.data / "ca.pem", stdin=token)
        self.agent_id: str = json.loads((self.state / "identity.json").read_text())["agent_id"]
        self.agent = Agent(self.state, root / "agent.log")
        self.outbox = self.state / "outbox.sqlite"

    # -- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        for writer in self.writers:
            writer.kill()
        for part in (self.agent, self.collector):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.kill()  # the count is done; a graceful stop only costs time
        if self.proxy is not None:
            self.proxy.close()
        if self.partition is not None:
            self.partition.heal()
        for mount in self.mounts.values():
            mount.unmount()

    # -- producing --------------------------------------------------------------------------

    def queue(self, n: int) -> set[str]:
        """Put n events straight into the outbox, as a sensor would; all must commit."""
        box = Outbox.open(self.outbox, self.agent_id)
        try:
            ids = {box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert(
                requested_by="chaos", note=str(i)))) for i in range(n)}
        finally:
            box.close()
        self.produced |= ids
        return ids

    def start_writer(self) -> Writer:
        writer = Writer(self.outbox, self.agent_id)
        self.writers.append(writer)
        return writer

    def stop_writer(self, writer: Writer) -> None:
        writer.kill()
        self.produced |= writer.ids
        self.in_doubt += writer.failed + 1
        self.writers.remove(writer)

    def stop_writers(self) -> None:
        for writer in list(self.writers):
            self.stop_writer(writer)

    def writer_ids(self) -> int:
        return sum(len(w.ids) for w in self.writers)

    # -- counting ---------------------------------------------------------------------------

    def stored(self) -> list[str]:
        out = run("safeguard-collector", "events", "--data", self.data, "--agent",
                  self.agent_id, "--limit", "10000000", "--format", "json")
        return [e["event"]["event_id"] for e in map(json.loads, out.splitlines())
                if "test_alert" in e["event"]]

    def tampering(self) -> str:
        return run("safeguard-collector", "tampering", "--data", self.data, "--format", "json")

    def tally(self) -> Tally:
        got = self.stored()
        ids = set(got)
        return Tally(len(self.produced), len(ids), len(got) - len(ids), self.produced - ids,
                     len(ids - self.produced), self.in_doubt)

    def settle(self, timeout: float = 300) -> Tally:
        """Wait until every produced event is stored (the writers stopped), then count."""
        self.stop_writers()
        last: list[Tally] = []

        def arrived() -> bool:
            last[:] = [self.tally()]
            return not (last[0].missing - self.allowed_lost)

        self.wait(arrived, timeout, lambda: f"every event to arrive ({last[0].line()})"
                  if last else "every event to arrive")  # fmt: skip
        return last[0]

    def check(self, tally: Tally) -> None:
        where = f"chaos seed={self.seed} faults={dict(self.faults.counts)} {tally.line()}"
        assert tally.twice == 0, f"events stored twice: {where}"
        assert not (tally.missing - self.allowed_lost), f"events lost: {where}"
        assert tally.extra <= tally.in_doubt, f"more extra events than puts in doubt: {where}"
        assert self.tampering() == "", f"tampering recorded against the PC: {where}"

    # -- waiting ----------------------------------------------------------------------------

    def wait(self, check: Callable[[], bool], timeout: float,
             what: str | Callable[[], str]) -> None:
        """Poll `check` until true; an agent that died meanwhile fails at once, with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            assert self.agent is not None
            code = self.agent.exited()
            if code is not None:
                raise AssertionError(f"chaos seed={self.seed}: the agent exited ({code}); its "
                                     f"log ends: {self.agent.text()[-3000:]}")
            time.sleep(0.2)
        text = what() if callable(what) else what
        raise AssertionError(
            f"chaos seed={self.seed}: timed out after {timeout:.0f}s waiting for {text}; "
            f"faults={dict(self.faults.counts)}\nagent log: {self.agent_log()[-2000:]}\n"
            f"collector log: {self.collector_log()[-2000:]}")

    def wait_for_writes(self, more: int, timeout: float = 120) -> None:
        """Until the writers have committed `more` events beyond what they have now."""
        goal = self.writer_ids() + more
        self.wait(lambda: self.writer_ids() >= goal, timeout, f"{more} more puts")

    def agent_log(self) -> str:
        return self.agent.text() if self.agent else ""

    def collector_log(self) -> str:
        return self.collector.tail(100_000) if self.collector else ""

    def log_count(self, pattern: str, which: str = "agent") -> int:
        text = self.agent_log() if which == "agent" else self.collector_log()
        return text.count(pattern)

    # -- the collector's database -----------------------------------------------------------

    def snapshot(self, name: str) -> Path:
        """Copy the stopped collector's database files aside."""
        dest = self.root / "snapshots" / name
        dest.mkdir(parents=True)
        for part in self.data.glob("collector.duckdb*"):
            shutil.copy2(part, dest / part.name)
        return dest

    def restore(self, snapshot: Path) -> None:
        """Put an older copy back in place of the stopped collector's database."""
        for part in self.data.glob("collector.duckdb*"):
            part.unlink()
        for part in snapshot.iterdir():
            shutil.copy2(part, self.data / part.name)


def rounds(rng: random.Random, kinds: Iterable[str], n: int) -> list[str]:
    """n fault kinds drawn from `kinds`, each at least once when n allows."""
    pool = list(kinds)
    picks = pool[:n] + [rng.choice(pool) for _ in range(max(0, n - len(pool)))]
    rng.shuffle(picks)
    return picks
