"""The chaos suite's long run: many fault rounds and a long outage, every event counted.

    .venv/bin/python bench/chaos.py --rounds 200 --outage-events 20000
    .venv/bin/python bench/chaos.py --rounds 1000 --outage-events 100000 --write  # the full one
    CHAOS_SEED=123 .venv/bin/python bench/chaos.py --rounds 50 --faults collector_kill,wal_damage

Runs one site (tests/chaos/site.py: real collector and agent processes, the test's proxy, a
writer putting events throughout) as root (tmpfs mounts, nftables). Each round draws a fault
from --faults with the seeded RNG and runs it (tests/chaos/faults.py); every --check-every
rounds, and at the end, the writer is stopped and the count must hold: every produced event
stored, none twice, no tampering. The outage is "a 4-hour outage compressed in time": the
collector is stopped while --outage-events events are put as fast as the outbox takes them
(about a school's 4 hours of events at 100,000), then started; the time to drain is recorded.
--write appends the command, machine and figures to bench/results/chaos.md. A failing run
keeps its folder (logs, outbox, database) and prints the seed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.chaos import faults  # noqa: E402  # the repository root goes on the path first
from tests.chaos.clock import Clock, libfaketime  # noqa: E402
from tests.chaos.netfilter import Partition  # noqa: E402
from tests.chaos.site import ChaosSite, seed_from_env  # noqa: E402

RESULTS = REPO / "bench" / "results" / "chaos.md"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--faults", default=",".join(faults.FAULTS),
                   help="fault kinds to draw from (default: all)")
    p.add_argument("--outage-events", type=int, default=20_000,
                   help="events put while the collector is down (0: no outage)")
    p.add_argument("--check-every", type=int, default=50, metavar="ROUNDS")
    p.add_argument("--seed", type=int, default=None, help="default: CHAOS_SEED, else fresh")
    p.add_argument("--keep", type=Path, default=None, help="site folder (default: a temp one)")
    p.add_argument("--write", action="store_true", help=f"append the figures to {RESULTS}")
    args = p.parse_args()
    kinds = [k for k in args.faults.split(",") if k]
    unknown = set(kinds) - set(faults.FAULTS)
    if unknown:
        p.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(faults.FAULTS)}")
    if "partition" in kinds and (why := Partition.unavailable()):
        print(f"chaos: no partition with nftables here ({why}); leaving it out", file=sys.stderr)
        kinds.remove("partition")
    seed = args.seed if args.seed is not None else seed_from_env()
    root = args.keep or Path(tempfile.mkdtemp(prefix="chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"chaos: seed={seed} folder={root} rounds={args.rounds} faults={','.join(kinds)}",
          flush=True)
    started = time.monotonic()
    site = ChaosSite(root, seed,
                     collector_disk_mb=160 if "collector_disk_full" in kinds else None,
                     agent_disk_mb=256 if "agent_disk_full" in kinds else None)
    ok = False
    figures: dict[str, object] = {}
    try:
        assert site.agent is not None
        if "clock" in kinds:
            lib = libfaketime()
            if lib is None:
                print("chaos: libfaketime missing (package faketime); no clock faults",
                      file=sys.stderr)
                kinds.remove("clock")
            else:
                site.agent.clock = Clock(root / "clock", lib)
        site.agent.start()
        site.start_writer()
        checks = 0
        for n in range(1, args.rounds + 1):
            kind = site.rng.choice(kinds)
            faults.FAULTS[kind](site)
            if n % 25 == 0:
                print(f"chaos: round {n}/{args.rounds} faults={dict(site.faults.counts)} "
                      f"elapsed={time.monotonic() - started:.0f}s", flush=True)
            if n % args.check_every == 0 and n < args.rounds:
                site.check(site.settle(timeout=900))
                checks += 1
                site.start_writer()
        outage_s = drain_s = 0.0
        if args.outage_events:
            outage_s, drain_s = outage(site, args.outage_events)
        tally = site.settle(timeout=1800)
        site.check(tally)
        checks += 1
        ok = True
        figures = {
            "rounds": args.rounds, "checks": checks,
            "faults": dict(sorted(site.faults.counts.items())),
            "produced": tally.produced, "stored": tally.stored, "twice": tally.twice,
            "extra (puts in doubt)": f"{tally.extra} ({tally.in_doubt})",
            "lost to -wal damage (rows whose every copy was hit)":
                len((site.allowed_lost - site.dropped) & tally.missing),
            "dropped at the outbox's bound during the outage": len(site.dropped),
            "outage": f"{args.outage_events} events put in {outage_s:.0f}s with the collector "
                      f"down; all stored {drain_s:.0f}s after it started" if args.outage_events
                      else "none",
            "time": f"{time.monotonic() - started:.0f}s",
        }
        print("chaos: PASSED " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    finally:
        site.close()
        if ok and args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
        elif not ok:
            print(f"chaos: FAILED seed={seed}; the site is kept in {root}", file=sys.stderr)
    if args.write:
        write(figures, seed, " ".join(sys.argv[1:]))
    return 0


def outage(site: ChaosSite, events: int) -> tuple[float, float]:
    """The collector down while `events` are put; returns (seconds putting, seconds to drain)."""
    assert site.collector is not None
    site.stop_writers()
    site.settle(timeout=900)  # the outage starts from a drained outbox
    site.collector.stop()
    before = set(site.produced)
    t0 = time.monotonic()
    remaining = events
    while remaining:
        site.queue(min(1000, remaining))
        remaining -= min(1000, remaining)
    put_s = time.monotonic() - t0
    # Past the outbox's bound (50,000 pending) the oldest go, by design, each counted in a
    # DROPPED status event: those are allowed to be missing, and reported.
    with sqlite3.connect(f"{site.outbox.resolve().as_uri()}?mode=ro", uri=True) as conn:
        kept = {i for (i,) in conn.execute("SELECT event_id FROM queued UNION "
                                          "SELECT event_id FROM chained")}  # fmt: skip
    site.dropped |= (site.produced - before) - kept  # of the outage's events only
    site.allowed_lost |= site.dropped
    site.collector.start()
    t1 = time.monotonic()
    site.settle(timeout=3600)
    return put_s, time.monotonic() - t1


def write(figures: dict[str, object], seed: int, argv: str) -> None:
    machine = (f"{os.cpu_count()} CPUs, "
               f"{platform.platform()}, Python {platform.python_version()}")
    lines = [
        f"\n## {time.strftime('%Y-%m-%d')}: `bench/chaos.py {argv}` (seed {seed})\n",
        f"Machine: {machine}.\n",
        "| figure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in figures.items()),
        "",
    ]
    with RESULTS.open("a") as out:
        out.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
