"""CPU per event row of DuckDB alone: insert, commit and checkpoint the events table.

    .venv/bin/python bench/bench_store.py                      # the schema as it is
    .venv/bin/python bench/bench_store.py --threads 1 --variants stored without-hash
    .venv/bin/python bench/bench_store.py --set checkpoint_threshold=256MB

The writer's share of the collector's CPU, without gRPC, verifiers or the engine: the same
rows a verifier hands the writer (100 agents' 500-event batches, 5% keyword detections),
inserted as one Arrow table per commit of 50,000 rows, then a final CHECKPOINT, so the
compression of every row is counted. DuckDB runs as the collector runs it (its thread count
and memory limit) unless told otherwise; events are observed a second apart. `without-hash`
leaves out the stored chain hash (32 random bytes per event, recomputable from the raw bytes
and the batches' hashes) to measure what it costs; the collector stores it.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_pipeline import Agent, machine, make_events

from collector import app
from collector.intake import event_table
from collector.storage import schema
from collector.storage.store import MEMORY_LIMIT
from protos import envelope

NONCE = b"n" * envelope.NONCE_LEN
AGENTS, BATCH = 100, 500


def commits(count: int) -> list[pa.Table]:
    """`count` commits of AGENTS batches each, as the writer stores them."""
    agents = [Agent(f"agent-{i:04d}", Ed25519PrivateKey.generate()) for i in range(AGENTS)]
    for a in agents:
        make_events(a, BATCH * count, 0.05, spread_ms=1000)
    out = []
    for c in range(count):
        tables = []
        for a in agents:
            lo, hi = c * BATCH, (c + 1) * BATCH
            prev = envelope.genesis(a.agent_id) if lo == 0 else a.hashes[lo - 1]
            batch = envelope.make_batch(a.key, a.agent_id, NONCE, lo + 1, prev, a.raws[lo:hi],
                                        a.hashes[lo:hi])
            checked = envelope.check_batch(batch, a.key.public_key(), NONCE)
            tables.append(event_table.from_checked(checked))
        rows = event_table.stamp_received(pa.concat_tables(tables), int(time.time() * 1000))
        out.append(event_table.stored_columns(rows))
    return out


def events_ddl(without_hash: bool) -> str:
    """The events table as the collector's migrations create it (created without the column
    rather than altered: inserts into an altered table measured slower)."""
    ddl = next(step for step in schema.MIGRATIONS if "CREATE TABLE events" in step)
    start = ddl.index("CREATE TABLE events")
    table = ddl[start : ddl.index(");", start) + 2]
    return re.sub(r",\s*hash\s+BLOB NOT NULL", "", table) if without_hash else table


def run(
    tables: list[pa.Table], threads: int, without_hash: bool, settings: dict[str, str]
) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="sg-store-bench-"))
    path = folder / "events.duckdb"
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": threads, "memory_limit": MEMORY_LIMIT, **settings
    }
    con = duckdb.connect(str(path), config=config)
    con.execute(events_ddl(without_hash))
    if without_hash:
        tables = [t.drop_columns(["hash"]) for t in tables]
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for table in tables:
        con.begin()
        con.register("commit_rows", table)
        con.execute("INSERT INTO events SELECT * FROM commit_rows")
        con.unregister("commit_rows")
        con.commit()
    con.execute("CHECKPOINT")
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
    con.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rows = sum(t.num_rows for t in tables)
    size = path.stat().st_size
    shutil.rmtree(folder)
    return {"rows": rows, "wall_s": wall, "cpu_us_per_row": cpu / rows * 1e6,
            "db_bytes_per_row": size / rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--commits", type=int, default=60, help="of 50,000 rows each")
    p.add_argument("--threads", type=int, default=app.DUCKDB_THREADS,
                   help=f"DuckDB threads (default: the collector's, {app.DUCKDB_THREADS} here)")
    p.add_argument("--variants", nargs="+", default=["stored"],
                   choices=["stored", "without-hash"])
    p.add_argument("--rounds", type=int, default=2, help="runs of each variant, alternating")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a DuckDB setting for the run, e.g. checkpoint_threshold=64MB")
    args = p.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    tables = commits(args.commits)
    print(f"machine: {machine()}")
    for _ in range(args.rounds):
        for variant in args.variants:
            r = run(tables, args.threads, variant == "without-hash", settings)
            print(f"variant={variant}  threads={args.threads}  "
                  f"settings={','.join(args.set) or 'default'}  rows={r['rows']}  "
                  f"wall_s={r['wall_s']:.2f}  cpu_us_per_row={r['cpu_us_per_row']:.2f}  "
                  f"db_bytes_per_row={r['db_bytes_per_row']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
