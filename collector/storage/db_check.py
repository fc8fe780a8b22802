"""Is the collector's database whole? A full read of every table, before anything is served.

DuckDB keeps a checksum on every 256 KiB block and verifies it when the block is read, but it
reads blocks only when a query needs them: `SELECT count(*)` answers from metadata and a
damaged file opens and counts cleanly. So the check reads every column of every row (a hash
over all of a table's columns), which makes DuckDB read, and verify, every block that holds
table data. What DuckDB does with damage (tried on 2.0.1, bench/results/db_check.md):
- a file truncated or with a damaged header or metadata block does not open at all;
- a zeroed or flipped block in table data opens, counts, and fails only when that block is read;
- a damaged `.wal` fails at open, except a truncated one or one whose first bytes are zeroed,
  which DuckDB replays up to the damage (or not at all) without a word, as it would a torn
  write after a crash. What it dropped is what agents resend from the head the collector
  tells them.

Pure reading on a connection it is given; collector/storage/store.py opens the database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import duckdb

log = logging.getLogger(__name__)

_DAMAGE_WORDS = ("corrupt", "checksum", "could not read enough bytes", "not a valid duckdb")


@dataclass(frozen=True)
class Damage:
    table: str
    error: str


@dataclass(frozen=True)
class Checked:
    tables: int
    rows: int
    seconds: float


def tables(con: duckdb.DuckDBPyConnection, database: str | None = None) -> list[str]:
    """The database's tables, small ones first so a damaged one is named quickly."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = "
        "coalesce(?, current_database()) AND schema_name = 'main' AND NOT temporary "
        "ORDER BY estimated_size, table_name",
        [database],
    ).fetchall()
    return [r[0] for r in rows]


def columns(con: duckdb.DuckDBPyConnection, table: str, database: str | None = None) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = "
        "coalesce(?, current_database()) AND schema_name = 'main' AND table_name = ? "
        "ORDER BY column_index",
        [database, table],
    ).fetchall()
    return [r[0] for r in rows]


def full_read_sql(con: duckdb.DuckDBPyConnection, table: str, database: str | None = None,
                  where: str = "") -> str:  # fmt: skip
    """A query that reads every column of every row (of `where`): a count and a hash."""
    cols = ", ".join(f'"{c}"' for c in columns(con, table, database))
    source = f'"{database}".main."{table}"' if database else f'"{table}"'
    return f"SELECT count(*), bit_xor(hash({cols})) FROM {source} {where}"  # noqa: S608 -- names from DuckDB's own catalogue


def is_damage(exc: BaseException) -> bool:
    """Does a DuckDB error say the file is damaged (rather than, say, a bad query)?"""
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and any(w in text for w in _DAMAGE_WORDS)


def full_read(con: duckdb.DuckDBPyConnection) -> Damage | Checked:
    """Read every table in full; the first damage found, or what was read."""
    started = time.monotonic()
    rows = 0
    try:
        names = tables(con)
    except duckdb.Error as exc:
        return Damage("(the catalogue)", _first_line(exc))
    for name in names:
        try:
            found = con.execute(full_read_sql(con, name)).fetchone()
        except duckdb.Error as exc:
            log.error("db.damaged table=%s error=%r", name, _first_line(exc))
            return Damage(name, _first_line(exc))
        rows += int(found[0]) if found else 0
    checked = Checked(len(names), rows, time.monotonic() - started)
    log.info("db.checked tables=%d rows=%d seconds=%.2f", checked.tables, checked.rows,
             checked.seconds)  # fmt: skip
    return checked


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
