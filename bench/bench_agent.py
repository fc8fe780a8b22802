"""Agent footprint and keystroke latency on a real X server (keyboard; browser figures are in
bench/bench_browser.py).

    .venv/bin/python bench/bench_agent.py                  # 60 s per phase, as in the results
    .venv/bin/python bench/bench_agent.py --seconds 10     # a quick look
    .venv/bin/python bench/bench_agent.py --semantic off   # the semantic stage switched off

Starts a real collector (in this process), Xvfb with an xterm, `safeguard-agent run` and its
`keyboard-helper` as real processes (log level info) from a venv made the way the installer
makes a PC's (`installer.pyenv.create`: `pip install .[agent]`, not editable, no collector or
dev packages). Its own copy matters for RSS: run from this venv, the agent would share gRPC's
and cryptography's library files with the collector in this process, and the kernel maps into
the agent pages the collector already brought into memory (3.9 MB more, measured), which a
classroom PC does not have. Then it measures with psutil, summed over both agent processes:
CPU (% of one core), RSS and PSS (shared pages counted once over the processes that
map them: the fair sum), idle, while xdotool types 10 characters/s,
and in a 200 characters/s burst. Then it stops the collector (so events stay in the outbox)
and times, for distinct phrases, the Enter that ends the text (an alert of a category with
guards waits for the end of its sentence) to the event's row in the outbox. The xdotool
process start (a few ms) is inside that figure, so it is an upper bound. Then it restarts the
agent (and the collector, on its port: with it down, the shipper's reconnecting keeps more
of gRPC's library resident) and measures idle and typing again. Last, the collector publishes
the same rules as a new version and, once the agent has applied it and its watchdog has
handed freed memory back, idle is measured again: a running service replacing its policy.

The agent is enrolled after the policy is published, so (as on a PC enrolled to a school that
has published its policy) enrolment keeps the bundle and the first start loads it directly.

The collector publishes the shipped policy (with ``--semantic off``, a copy whose semantic
stage is switched off) before the agent starts; with the stage on, measuring begins once the
agent has fetched the model and embedded the bank ("semantic.ready" in its log). The typing
phases then end sentences with Enter, so the stage judges them; and the sentence-to-alert
delay is timed from the Enter after a sentence only the semantic stage catches.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.enrol import enrol  # noqa: E402 -- after the path is set
from agent.identity import StateDir  # noqa: E402
from collector import policy as published  # noqa: E402
from installer.pyenv import create  # noqa: E402
from rules.compile import Compiled  # noqa: E402
from rules.load import DEFAULT_DIR, load_policy  # noqa: E402
from rules.match import match_text  # noqa: E402
from tests.e2e.agent.desktop import AgentProcesses, Desktop  # noqa: E402
from tests.harness import CollectorHarness  # noqa: E402

TEXT = ("the class wrote about the water cycle and the rain that falls on the hills near "
        "Scunthorpe.\nthen we read a story about a fox who found a lost kite.\n")  # fmt: skip
PHRASES = ["i will kill you", "this is our little secret", "dont tell your mum",
           "you are ugly and everyone hates you", "I want to kill myself"]  # fmt: skip


def wait_for(cond: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.05)


def pss_mb(pid: int) -> float:
    """Proportional set size: each shared page counted once over the processes that map it
    (the service and the helper share libpython, libc and other libraries' pages, which an
    RSS sum counts twice). From /proc/PID/smaps_rollup (Linux 4.14+)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no Pss line for process {pid}")


def measure(pids: list[int], seconds: float, work: object = None) -> tuple[float, float, float]:
    """(CPU % of one core, peak RSS MB, peak PSS MB) summed over pids while `work()` runs."""
    procs = [psutil.Process(p) for p in pids]
    cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
    t0 = time.monotonic()
    peak = peak_pss = 0.0
    while time.monotonic() - t0 < seconds:
        if work is not None:
            work()  # type: ignore[operator]
        else:
            time.sleep(1.0)
        peak = max(peak, sum(p.memory_info().rss for p in procs) / 2**20)
        peak_pss = max(peak_pss, sum(pss_mb(p.pid) for p in procs))
    cpu1 = sum(sum(p.cpu_times()[:2]) for p in procs)
    return 100 * (cpu1 - cpu0) / (time.monotonic() - t0), peak, peak_pss


def by_process(procs: AgentProcesses) -> dict[str, tuple[float, float]]:
    """(RSS MB, PSS MB) of each agent process now."""
    pids = (("agent run", procs.agent.pid), ("keyboard-helper", procs.helper.pid))
    return {name: (psutil.Process(pid).memory_info().rss / 2**20, pss_mb(pid))
            for name, pid in pids}  # fmt: skip


def settle(pids: list[int], quiet_pct: float = 2.0, longest_s: float = 180.0) -> None:
    """Wait until start-up work is over (compiling the policy takes seconds of CPU and would
    otherwise fall into the idle phase): two 2-second spans in a row under ``quiet_pct``."""
    procs = [psutil.Process(p) for p in pids]
    deadline, quiet = time.monotonic() + longest_s, 0
    while quiet < 2 and time.monotonic() < deadline:
        before = sum(sum(p.cpu_times()[:2]) for p in procs)
        time.sleep(2)
        used = sum(sum(p.cpu_times()[:2]) for p in procs) - before
        quiet = quiet + 1 if 100 * used / 2 < quiet_pct else 0


def released(log: Path) -> None:
    """The end of start-up as the agent sees it: its watchdog handed back the pages of the
    libraries that only start-up ran, 30 s after start (agent/memory.py)."""
    wait_for(lambda: "memory.library_pages_released" in log.read_text(), 300)


def queued_keywords(outbox: Path) -> int:
    db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM queued WHERE severity > 0").fetchone()[0])
    finally:
        db.close()


def semantic_only_sentences(n: int = 5) -> list[str]:
    """Curated exemplars the patterns do not alert on: an alert for them is the stage's."""
    policy = load_policy()
    compiled = Compiled(policy, "ks2")
    assert policy.semantic is not None
    return [e.text for e in policy.semantic.exemplars
            if e.category != "innocent" and not match_text(compiled, e.text)][:n]  # fmt: skip


def rules_with_semantic(tmp: Path, on: bool) -> Path:
    folder = tmp / "rules"
    shutil.copytree(DEFAULT_DIR, folder)
    if not on:
        path = folder / "semantic.toml"
        path.write_text(path.read_text().replace("enabled = true", "enabled = false", 1))
    return folder


def agent_site(tmp: Path, semantic_on: bool,
               bin_dir: Path) -> tuple[CollectorHarness, StateDir, Desktop, AgentProcesses]:
    """A collector publishing the shipped policy (stage on or off), an agent enrolled to it,
    Xvfb with a focused window, and `safeguard-agent run` with its helper from bin_dir."""
    collector = CollectorHarness(tmp / "collector")
    collector.start()
    published.publish(collector.data, rules_with_semantic(tmp, semantic_on))
    state = StateDir(tmp / "agent")
    enrol(state, collector.address, collector.new_token(), collector.ca_path.read_bytes())
    desktop = Desktop(tmp)
    procs = AgentProcesses(state.root, desktop, tmp / "work", heartbeat=60, log_level="info",
                           bin_dir=bin_dir)  # fmt: skip
    desktop.window("notes")
    desktop.focus("notes")
    return collector, state, desktop, procs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--semantic", choices=("on", "off"), default="on")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    version = create(tmp / "agent-venv", ROOT, "agent")
    print(f"agent venv: {tmp / 'agent-venv'} (safeguard-monitor {version}, "
          f"semantic stage {args.semantic})", flush=True)  # fmt: skip
    collector, state, desktop, procs = agent_site(tmp, args.semantic == "on",
                                                  tmp / "agent-venv" / "bin")  # fmt: skip
    try:
        # The helper runs once the matcher is compiled: 15 s of CPU, minutes on a busy machine.
        wait_for(lambda: "state=running" in (procs.logs / "agent.err").read_text(), 900)
        if args.semantic == "on":  # the model fetched and the bank embedded (minutes, cold)
            wait_for(lambda: "semantic.ready" in (procs.logs / "agent.err").read_text(), 900)
        pids = procs.pids()
        settle(pids)  # start-up work (policy fetch, compiling the matcher, first scans)
        released(procs.logs / "agent.err")
        rows = [("idle", *measure(pids, args.seconds))]

        def slow() -> None:  # 10 characters a second
            desktop.type(TEXT[:20], delay_ms=100)

        rows.append(("typing 10 chars/s", *measure(pids, args.seconds, slow)))

        def burst() -> None:  # 200 characters a second (xdotool's own pace permitting)
            desktop.type(TEXT, delay_ms=5)

        rows.append(("burst 200 chars/s", *measure(pids, min(args.seconds, 30), burst)))
        split = by_process(procs)
        collector.stop()  # events now stay in the outbox, where we time their arrival
        latencies = []
        for phrase in PHRASES:
            desktop.type("\n" + phrase, delay_ms=20)
            before = queued_keywords(state.outbox)
            t0 = time.perf_counter()
            # Enter ends the text: an alert of a category with guards (suicide, violence ...)
            # waits for the end of its sentence, the others come at the key after the term.
            desktop.key("Return")
            while queued_keywords(state.outbox) == before:
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"no event for {phrase!r}")
                time.sleep(0.001)
            latencies.append(1000 * (time.perf_counter() - t0))
        sentence_ms = []
        for sentence in semantic_only_sentences() if args.semantic == "on" else []:
            desktop.type("\n" + sentence, delay_ms=20)
            before = queued_keywords(state.outbox)
            t0 = time.perf_counter()
            desktop.key("Return")  # the sentence is finished: the stage judges it
            while queued_keywords(state.outbox) == before:
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"no semantic event for {sentence!r}")
                time.sleep(0.001)
            sentence_ms.append(1000 * (time.perf_counter() - t0))
        # Every later start: the PC loads the collector's policy it kept (policy.json), not
        # the shipped one and then the collector's, as on its first start above.
        procs.stop()
        collector.start()  # (same port) a PC's steady state: its collector reachable
        procs = AgentProcesses(state.root, desktop, tmp / "work-restarted", heartbeat=60,
                               log_level="info", bin_dir=tmp / "agent-venv" / "bin")
        started = procs.logs / "agent.err"
        wait_for(lambda: "state=running" in started.read_text(), 900)
        if args.semantic == "on":
            wait_for(lambda: "semantic.ready" in started.read_text(), 900)
        settle(procs.pids())
        released(started)
        rows.append(("idle, restarted", *measure(procs.pids(), args.seconds)))
        rows.append(("typing, restarted", *measure(procs.pids(), args.seconds, slow)))
        split_later = by_process(procs)
        releases = started.read_text().count("memory.library_pages_released")
        new_version = published.publish(collector.data).version  # the last folder again
        wait_for(lambda: f"policy.compiled version={new_version}" in started.read_text(), 900)
        # The watchdog releases the libraries' pages the update ran, 10-30 s after it.
        wait_for(lambda: started.read_text().count("memory.library_pages_released")
                 > releases, 120)  # fmt: skip
        settle(procs.pids())
        time.sleep(25)  # the watchdog's next check (every 20 s) trims the freed heap
        rows.append(("idle, after a policy update", *measure(procs.pids(), args.seconds)))
        split_update = by_process(procs)
    finally:
        procs.stop()
        desktop.close()
        collector.stop()
    cpu = psutil.cpu_freq()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
          f"{cpu.max if cpu else '?'} MHz, Python {platform.python_version()}")  # fmt: skip
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| phase | CPU (% of one core) | peak RSS, agent + helper (MB) | peak PSS (MB) |")
    print("|---|---|---|---|")
    for name, pct, rss, pss in rows:
        print(f"| {name} | {pct:.2f} | {rss:.1f} | {pss:.1f} |")
    for when, figures in (("first start", split), ("restarted", split_later),
                          ("after a policy update", split_update)):
        print(f"RSS / PSS by process, {when} (MB): "
              + ", ".join(f"{k} {r:.1f} / {p:.1f}" for k, (r, p) in figures.items()))
    print(f"Enter after a phrase -> outbox (ms, n={len(latencies)}): median "
          f"{statistics.median(latencies):.1f}, max {max(latencies):.1f}")  # fmt: skip
    if sentence_ms:
        print(f"Enter after a sentence -> semantic event in the outbox (ms, n={len(sentence_ms)})"
              f": median {statistics.median(sentence_ms):.1f}, max {max(sentence_ms):.1f}")


if __name__ == "__main__":
    main()
