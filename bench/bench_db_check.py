"""How long the start check (collector/storage/db_check.py: every table read in full) takes.

    .venv/bin/python bench/bench_db_check.py --events 50000000 --db /var/tmp/sg-db-check.duckdb

Builds (once; reused if it exists) a database by the collector's own migrations with `--events`
rows in the events table, made by INSERT ... SELECT from range(): 2,000 agents, each event
about 150 bytes of raw bytes (two MD5s in hex and a kind, so about as compressible as real
events' protobuf with their text) and a 32-byte hash, as the writer stores them. Then opens it
as `serve` does (Store(check=True), the collector's DuckDB threads and memory limit) and times
the check: warm (the file in the page cache) and, when the page cache can be dropped (root,
/proc/sys/vm/drop_caches writable), cold.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector import app
from collector.storage.store import Store

CHUNK = 5_000_000
AGENTS = 2_000


def build(path: Path, events: int) -> float:
    started = time.monotonic()
    store = Store(path, threads=app.DUCKDB_THREADS)
    try:
        for lo in range(0, events, CHUNK):
            store.con.execute(
                "INSERT INTO events SELECT 'ag-' || lpad((i % ?)::VARCHAR, 20, '0'), "
                "(i // ? + 1)::UBIGINT, md5((i * 3)::VARCHAR)[:16], CASE WHEN i % 20 = 0 THEN "
                "'keyword' ELSE 'heartbeat' END, (i % 5 + 1)::UTINYINT, 'pupil' || (i % 900), "
                "1700000000000 + i * 20, 1700000000000 + i * 20, ('kind=heartbeat;' || "
                "md5(i::VARCHAR) || md5((i * 7)::VARCHAR) || ';sensors=keyboard,usb,browser;' "
                "|| md5((i * 11)::VARCHAR))::BLOB, unhex(sha256(i::VARCHAR)) "
                "FROM range(?, ?) t(i)",
                [AGENTS, AGENTS, lo, min(lo + CHUNK, events)],
            )
            print(f"  built {min(lo + CHUNK, events):,} events", flush=True)
        store.con.execute("CHECKPOINT")
    finally:
        store.close()
    return time.monotonic() - started


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def check(path: Path) -> tuple[float, int]:
    started = time.monotonic()
    store = Store(path, threads=app.DUCKDB_THREADS, check=True)
    try:
        assert store.checked is not None
        return time.monotonic() - started, store.checked.rows
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--db", type=Path, required=True, help="made if missing, reused if not")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")  # fmt: skip
    if not args.db.exists():
        print(f"building {args.events:,} events in {args.db} ...", flush=True)
        print(f"built in {build(args.db, args.events):.0f} s")
    size = args.db.stat().st_size
    print(f"database: {size / 2**30:.2f} GiB")
    check(args.db)  # warm the page cache
    warm = [check(args.db) for _ in range(3)]
    for seconds, rows in warm:
        print(f"check, warm cache: {seconds:.1f} s for {rows:,} rows")
    if drop_caches():
        seconds, rows = check(args.db)
        print(f"check, cold cache (page cache dropped): {seconds:.1f} s for {rows:,} rows "
              f"({size / 2**20 / seconds:.0f} MiB/s)")  # fmt: skip
    else:
        print("cold cache: not measured (cannot write /proc/sys/vm/drop_caches)")


if __name__ == "__main__":
    main()
