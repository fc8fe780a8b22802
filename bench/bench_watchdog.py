"""What the agent's watchdog (agent/selfwatch.py) costs per check, and so per minute.

    .venv/bin/python bench/bench_watchdog.py            # print the figures
    .venv/bin/python bench/bench_watchdog.py --write    # also write bench/results/watchdog.md

One check reads every thread's CPU times (psutil threads(): /proc/self/task/*/stat), the
resident memory of the service and of each helper (/proc/PID/statm), and compares. Measured
with the real Watchdog over a real Supervisor: three sensor threads that wait (as sensors do
between events), idle threads to make up the service's usual count, and real helper processes
(sleeping interpreters) reported as the keyboard sensor's helpers.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.policy import ActivePolicy
from agent.selfwatch import Watchdog, WatchdogLimits
from agent.sensors import HelperProcess, SensorContext
from agent.sensors.registry import SensorSettings, SensorSpec
from agent.supervisor import Supervisor
from agent.usage import ThreadCpu, rss
from rules.load import load_policy

CHECKS = 2000
THREADS = 20  # about what `safeguard-agent run` has (sensors, shipper, fetchers, gRPC's own)


class Waiting:
    def __init__(self, name: str, helpers: list[HelperProcess]) -> None:
        self.name = name
        self._helpers = helpers
        self._stop = threading.Event()

    def run(self, ctx: SensorContext) -> None:
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()

    def helpers(self) -> list[HelperProcess]:
        return self._helpers


def timed(call: Callable[[], object], n: int) -> tuple[list[float], float]:
    """Wall µs per call, and CPU µs per call (this thread's)."""
    walls = []
    cpu0 = time.thread_time()
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        walls.append((time.perf_counter() - t0) * 1e6)
    return walls, (time.thread_time() - cpu0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--helpers", type=int, default=2)
    args = parser.parse_args()
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
             for _ in range(args.helpers)]  # fmt: skip
    helpers = [HelperProcess(p.pid, f"pupil{i}", "keyboard helper", lambda _r: None)
               for i, p in enumerate(procs)]  # fmt: skip
    specs = [SensorSpec(n, lambda _s, n=n: Waiting(n, helpers if n == "keyboard" else []))
             for n in ("keyboard", "browser", "usb")]  # fmt: skip
    ctx = SensorContext(emit=lambda e: None, policy=lambda: ActivePolicy(0, load_policy()))
    supervisor = Supervisor(specs, ctx, SensorSettings(Path("/nonexistent")))
    supervisor.apply({"keyboard", "browser", "usb"})
    idle = threading.Event()
    extra = THREADS - threading.active_count()
    for _ in range(max(0, extra)):
        threading.Thread(target=idle.wait, daemon=True).start()
    time.sleep(0.5)
    watchdog = Watchdog(WatchdogLimits(), supervisor, lambda e: None)
    sampler = ThreadCpu()
    groups = supervisor.threads()
    rows = []
    for label, fn in (
        ("whole check (`Watchdog.check`)", watchdog.check),
        ("thread CPU sample (`ThreadCpu.sample`)", lambda: sampler.sample(groups)),
        ("one process's RSS (`usage.rss`)", lambda: rss(os.getpid())),
    ):
        walls, cpu = timed(fn, CHECKS)
        q = statistics.quantiles(walls, n=100)
        rows.append((label, statistics.median(walls), q[98], cpu))
    threads = threading.active_count()
    idle.set()
    supervisor.stop()
    for p in procs:
        p.kill()
        p.wait()
    check_cpu = rows[0][3]
    share = check_cpu / 1e6 / WatchdogLimits().check_s * 100
    table = ["| what | calls | p50 µs | p99 µs | CPU µs per call |", "|---|---|---|---|---|"]
    table += [f"| {label} | {CHECKS:,} | {p50:.0f} | {p99:.0f} | {cpu:.0f} |"
              for label, p50, p99, cpu in rows]  # fmt: skip
    text = "\n".join(table) + (
        f"\n\n{threads} threads in the process, {len(helpers)} helper processes, 3 sensors. "
        f"At the default check interval ({WatchdogLimits().check_s:g} s) the watchdog uses "
        f"{share:.4f} % of one core ({check_cpu * 3 / 1000:.2f} ms of CPU a minute).\n")
    print(text)
    if args.write:
        doc = "\n\n".join((__doc__ or "").split("\n\n")[2:]).strip()
        load = os.getloadavg()[0]
        out = Path(__file__).resolve().parent / "results" / "watchdog.md"
        out.write_text(
            "# Watchdog cost per check\n\n"
            f"Command: `.venv/bin/python bench/bench_watchdog.py --write`\n\n"
            f"Machine: {platform.machine()}, Python {platform.python_version()}, "
            f"{platform.system()}; load average {load:.2f} at the end.\n\n{doc}\n\n{text}"
        )


if __name__ == "__main__":
    main()
