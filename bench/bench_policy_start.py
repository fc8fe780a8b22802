"""Benchmark of an agent service's start: loading its policy and compiling a profile's matcher,
the first time and from what the first start kept (agent/policy_cache.py).

    .venv/bin/python bench/bench_policy_start.py            # print the figures
    .venv/bin/python bench/bench_policy_start.py --write    # also write bench/results/

As the service does it: a `PolicyHolder` over a signed bundle of the shipped lists (as
`policy.json`), then `compiled("ks2")`, each in the policy child when nothing is kept. CPU is
this process's and its children's (so load moves it little); wall clock beside it.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from agent.policy import PolicyHolder  # noqa: E402
from agent.policy_cache import PolicyCache  # noqa: E402
from rules.bundle import build_bundle  # noqa: E402
from rules.load import DEFAULT_DIR  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "policy_start.md"


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    c0, t0 = cpu(), time.perf_counter()
    value = fn()
    return cpu() - c0, time.perf_counter() - t0, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        (state / "policy.json").write_bytes(build_bundle(DEFAULT_DIR, 5, key))
        load0 = os.getloadavg()[0]
        for label in ("first start (nothing kept)", "restart", "restart again"):
            c1, w1, holder = timed(lambda: PolicyHolder(
                state / "policy.json", key.public_key(), cache=PolicyCache(state / "kept")))
            assert isinstance(holder, PolicyHolder)
            c2, w2, _ = timed(lambda: holder.current().compiled("ks2"))  # noqa: B023
            rows.append(f"| {label} | {c1:.2f} / {w1:.2f} | {c2:.2f} / {w2:.2f} |")
        kept = sum(p.stat().st_size for p in (state / "kept").iterdir()) / 2**20
    lines = [
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average (1 min) {load0:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end. Kept: {kept:.1f} MB.",
        "",
        "| start | policy loaded: CPU / wall s | ks2 matcher: CPU / wall s |",
        "|---|---|---|",
        *rows,
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        RESULTS.write_text("# Agent start: policy and matcher, made or read back\n\n```sh\n"
                           ".venv/bin/python bench/bench_policy_start.py --write\n```\n\n"
                           + text + "\n", encoding="utf-8")  # fmt: skip


if __name__ == "__main__":
    main()
