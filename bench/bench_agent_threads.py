"""Where an idle agent's CPU goes: CPU ticks per thread of `safeguard-agent run` and its
keyboard helper, summed over a quiet span on a real X server (Xvfb), with the semantic
stage off. bench/bench_agent.py gives the totals; this names the threads behind them.

    .venv/bin/python bench/bench_agent_threads.py                 # 120 s, this checkout's venv
    .venv/bin/python bench/bench_agent_threads.py --seconds 300

Thread names come from `py-spy dump` (a dev dependency); ticks from /proc/PID/task/TID/stat
(utime + stime, 100 a second). The agent runs from this checkout's venv (editable), so its
memory is not a PC's (bench_agent.py builds a PC's venv); its CPU is the same code's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_agent import agent_site, released, settle, wait_for  # noqa: E402

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def ticks_by_thread(pid: int) -> dict[str, int]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        out[task.name] = int(fields[11]) + int(fields[12])
    return out


def thread_names(pid: int) -> dict[str, str]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    text = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True,
                          check=False).stdout  # fmt: skip
    return {line.split()[1]: line.split('"')[1] for line in text.splitlines()
            if line.startswith("Thread ") and '"' in line}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-threads-"))
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    collector, _, desktop, procs = agent_site(tmp, False, Path(sys.executable).parent)
    try:
        log = procs.logs / "agent.err"
        wait_for(lambda: "state=running" in log.read_text(), 900)
        pids = procs.pids()
        settle(pids)
        released(log)
        time.sleep(5)  # the pages read back after the release
        before = {pid: ticks_by_thread(pid) for pid in pids}
        time.sleep(args.seconds)
        after = {pid: ticks_by_thread(pid) for pid in pids}
        for pid, name in zip(pids, ("agent run", "keyboard-helper"), strict=True):
            names = thread_names(pid)
            used = {tid: n - before[pid].get(tid, 0) for tid, n in after[pid].items()}
            total = sum(used.values())
            pct = 100 * total / TICKS_PER_S / args.seconds
            print(f"{name}: {total} ticks in {args.seconds:.0f} s = {pct:.2f} % of one core")
            for tid, n in sorted(used.items(), key=lambda kv: -kv[1]):
                if n:
                    print(f"    {names.get(tid, 'unnamed (a library thread)')}: {n}")
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        procs.stop()
        desktop.close()
        collector.stop()


if __name__ == "__main__":
    main()
