"""Console and incident-engine figures with 1,000,000 events and ~10,000 candidates in DuckDB.

    .venv/bin/python bench/bench_console.py                     # full size, writes nothing
    .venv/bin/python bench/bench_console.py --out bench/results/console.md

1. Fills a fresh collector database: `--events` stored events (mostly heartbeats, 2% keyword
   and URL detections, as real protobuf bytes) from 300 machines and 3,000 pupils, and builds the
   candidates with the incident engine (the same code the after-commit hook runs).
2. Starts the collector in this process with the console (aiohttp on its asyncio loop), logs in
   as a DSL over HTTP and times `--requests` loads of the triage list (default filter, random
   filters), of random incident pages, of the landing dashboard, of random pupils'
   chronologies and of free-text searches (each writes its audit row first, as in production),
   with a 1,500-pupil roster so pages show names.
3. Enrols a simulated agent over TLS gRPC and ships one detection at a time: the time from the
   acknowledgement (sent only after the DuckDB commit) until the candidate is readable.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.incidents import config  # noqa: E402 -- after the path is set
from collector.incidents.engine import Engine  # noqa: E402
from collector.intake.event_table import EVENT_COLUMNS  # noqa: E402
from collector.storage.store import Store  # noqa: E402
from protos import envelope, events_pb2  # noqa: E402
from tests.integration.console.support import (  # noqa: E402
    PASSWORD,
    Agent,
    Client,
    ConsoleHarness,
    keyword,
)

CATS = ["bullying", "extremism", "grooming", "self_harm", "drugs", "violence", "gambling"]
CHUNK = 100_000


def fill(store: Store, n_events: int, seed: int = 7) -> tuple[float, float, int]:
    rng = random.Random(seed)
    agents = [f"ag-bench{i:04d}" for i in range(300)]
    seqs = dict.fromkeys(agents, 0)
    start = int(time.time() * 1000) - 60 * 86_400_000  # 60 school days back
    step = 60 * 86_400_000 // n_events
    hb = envelope.event_bytes(
        events_pb2.Event(heartbeat=events_pb2.Heartbeat(policy_version="7", agent_version="0.1.0"))
    )
    engine = Engine(config.load())
    t_insert = t_engine = 0.0
    done = 0
    while done < n_events:
        n = min(CHUNK, n_events - done)
        # The columns it fills; append_events gives the rest (clock skew, malformed) as null.
        cols: dict[str, list[object]] = {
            k: [] for k in EVENT_COLUMNS if k not in ("clock_skew_ms", "malformed")
        }
        detections = []
        for i in range(n):
            agent = rng.choice(agents)
            seqs[agent] += 1
            at = start + (done + i) * step
            if rng.random() < 0.02:
                cat = rng.choice(CATS)
                acct = f"pupil.{rng.randrange(3000):04d}"
                ev = keyword(
                    cat,
                    [f"term{rng.randrange(50)}"],
                    account=acct,
                    at_ms=at,
                    score=rng.randrange(40),
                    context="bench context words here",
                )
                ev.seq = seqs[agent]
                raw, kind, sev = envelope.event_bytes(ev), "keyword", 3
                detections.append((agent, seqs[agent], kind, at, raw))
            else:
                raw, kind, sev, acct = hb, "heartbeat", 0, ""
            for k, v in (
                ("agent_id", agent),
                ("seq", seqs[agent]),
                ("event_id", f"{done + i:x}"),
                ("kind", kind),
                ("severity", sev),
                ("account", acct),
                ("observed_ms", at),
                ("received_ms", at),
                ("raw", raw),
                ("hash", b"\0" * 32),
            ):
                cols[k].append(v)
        t = time.perf_counter()
        with store.transaction():
            store.append_events(cols)  # type: ignore[arg-type]
        t_insert += time.perf_counter() - t
        t = time.perf_counter()
        engine.process(store, detections, notify=False)
        t_engine += time.perf_counter() - t
        done += n
        print(f"  {done:,} events stored", flush=True)
    fill_roster(store, rng)
    row = store.con.execute("SELECT count(*) FROM incidents").fetchone()
    return t_insert, t_engine, int(row[0]) if row else 0


ROSTER = 1500  # pupils on the roster: half the accounts the detections name
STAFF = 60  # accounts the detections name that the roster says are staff (the LADO route)


def fill_roster(store: Store, rng: random.Random) -> None:
    """A 1,500-pupil roster, so every page shows names, year and class (collector/roster/)."""
    now = int(time.time() * 1000)
    with store.transaction():
        store.append_rows("roster", {
            "account": [f"pupil.{i:04d}" for i in range(ROSTER)],
            "first": [f"First{i}" for i in range(ROSTER)],
            "last": [f"Last{rng.randrange(10_000)}" for _ in range(ROSTER)],
            "year": [str(1 + i % 6) for i in range(ROSTER)],
            "class": [f"{1 + i % 6}{'ABC'[i % 3]}" for i in range(ROSTER)],
            "upn": [""] * ROSTER,
            "staff": [False] * ROSTER,
            "imported_ms": [now] * ROSTER,
            "updated_ms": [now] * ROSTER,
            "left_ms": [None] * ROSTER,
        })  # fmt: skip
        # The last accounts the detections name are staff: their alerts go to the head only,
        # so a deputy's pages filter them out (collector/incidents/staff_alerts.py).
        staff = [f"pupil.{i:04d}" for i in range(3000 - STAFF, 3000)]
        store.append_rows("roster", {
            "account": staff, "first": ["Staff"] * STAFF, "last": staff, "year": [""] * STAFF,
            "class": [""] * STAFF, "upn": [""] * STAFF, "staff": [True] * STAFF,
            "imported_ms": [now] * STAFF, "updated_ms": [now] * STAFF, "left_ms": [None] * STAFF,
        })  # fmt: skip


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--detections", type=int, default=50, help="live event -> candidate trials")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        harness = ConsoleHarness(Path(tmp) / "collector")
        store = Store(harness.data.database)
        print(f"filling {args.events:,} events ...", flush=True)
        t_insert, t_engine, n_inc = fill(store, args.events)
        store.close()
        harness.start()
        harness.add_user("dsl", "dsl", "Bench DSL", PASSWORD, must_change=False)
        harness.add_user("head", "head", "Bench Head", PASSWORD, must_change=False)
        harness.add_user("deputy", "deputy_dsl", "Bench Deputy", PASSWORD, must_change=False)
        dsl = Client(harness.url)
        dsl.login("dsl")
        deputy = Client(harness.url)
        deputy.login("deputy")
        ids = [
            r[0]
            for r in harness.with_store(
                lambda s: s.con.execute(  # the DSL's own: alerts about staff go to the head
                    "SELECT id FROM incidents WHERE account NOT IN (SELECT account FROM roster "
                    "WHERE staff)").fetchall()
            )
        ]
        rng = random.Random(1)
        timings: dict[str, list[float]] = {"list": [], "list_filtered": [], "incident": [],
                                           "dashboard": [], "chronology": [],
                                           "search": [], "list (deputy)": [],
                                           "dashboard (deputy)": [],
                                           "search (deputy)": []}  # fmt: skip
        for _ in range(5):  # warm up
            dsl.get("/incidents")
        for _ in range(args.requests):
            for name, path in (
                ("list", "/incidents"),
                (
                    "list_filtered",
                    f"/incidents?status=&severity={rng.randint(2, 5)}"
                    f"&category={rng.choice(CATS)}&pupil=pupil.{rng.randrange(300):03d}",
                ),
                ("incident", f"/incidents/{rng.choice(ids)}"),
                ("dashboard", "/dashboard"),
                ("chronology", f"/pupils/pupil.{rng.randrange(3000 - STAFF):04d}/chronology"),
                ("search", f"/incidents?status=&q=term{rng.randrange(50)}"),
                ("list (deputy)", "/incidents"),
                ("dashboard (deputy)", "/dashboard"),
                ("search (deputy)", f"/incidents?status=&q=term{rng.randrange(50)}"),
            ):
                who = deputy if "deputy" in name else dsl
                t = time.perf_counter()
                status, _ = who.get(path)
                timings[name].append((time.perf_counter() - t) * 1000)
                assert status == 200, (path, status)
        agent = Agent.enrol(harness)
        agent.settle = lambda: None  # measure without waiting for the hook
        lag: list[float] = []
        for i in range(args.detections):
            sig_before = harness.with_store(
                lambda s: s.con.execute(
                    "SELECT count(*) FROM incident_signals WHERE agent_id = ?", [agent.agent_id]
                ).fetchone()[0]
            )
            agent.ship(keyword("extremism", ["x"], account=f"pupil.live{i}"))
            t = time.perf_counter()  # the ack has arrived: the event is committed
            reader = harness.running.store.reader()
            try:
                while (
                    reader.execute(
                        "SELECT count(*) FROM incident_signals WHERE agent_id = ?", [agent.agent_id]
                    ).fetchone()[0]
                    <= sig_before
                ):
                    time.sleep(0.0005)
            finally:
                reader.close()
            lag.append((time.perf_counter() - t) * 1000)
        hook_ms = harness.running.incidents.engine.last_ms if harness.running.incidents else 0
        harness.stop()
    lines = [
        "# Console and incident engine",
        "",
        f"Command: `.venv/bin/python bench/bench_console.py --events {args.events} "
        f"--requests {args.requests}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}  ",
        f"Data: {args.events:,} events (2% detections), {n_inc:,} candidates, 300 machines, "
        f"3,000 accounts ({ROSTER:,} pupils on the roster, {STAFF} staff whose alerts a deputy "
        "does not see)",
        "",
        "| figure | p50 | p95 | max | goal |",
        "|---|---|---|---|---|",
    ]
    for name, goal in (
        ("list", "< 200 ms"),
        ("list_filtered", "< 200 ms"),
        ("incident", "< 200 ms"),
        ("dashboard", "< 200 ms"),
        ("chronology", "< 200 ms"),
        ("search", "< 200 ms"),
        ("list (deputy)", "< 200 ms"),
        ("dashboard (deputy)", "< 200 ms"),
        ("search (deputy)", "< 200 ms"),
    ):
        xs = timings[name]
        lines.append(
            f"| {name.replace('_', ' ')} page (ms, {len(xs)} loads) | {pct(xs, 50):.1f} "
            f"| {pct(xs, 95):.1f} | {max(xs):.1f} | {goal} |"
        )
    lines.append(
        f"| event commit -> candidate readable (ms, {len(lag)} events) | "
        f"{pct(lag, 50):.1f} | {pct(lag, 95):.1f} | {max(lag):.1f} | < 2000 ms |"
    )
    lines += [
        "",
        f"Bulk fill: {t_insert:.1f} s inserting events; engine over the stored detections "
        f"{t_engine:.1f} s ({args.events * 0.02 / max(t_engine, 1e-9):,.0f} detections/s). "
        f"Last live after-commit hook: {hook_ms:.1f} ms.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
