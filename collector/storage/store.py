"""The only module that opens DuckDB. One Store per process, used from one thread at a time.

DuckDB allows one writing process per file, so the running collector owns the database and the
CLI reaches it through the admin socket (collector/admin.py); a Store is opened directly only
when no collector is running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from collector.intake import event_table
from collector.intake.event_table import EVENT_SCHEMA
from collector.storage import db_check
from collector.storage.schema import MIGRATIONS

log = logging.getLogger(__name__)

# DuckDB's buffer pool otherwise grows to 80% of RAM; the collector shares its node.
MEMORY_LIMIT = "256MB"


class DatabaseError(RuntimeError):
    """The database cannot be used; the message says why and what to do."""


def damaged(path: Path, what: str) -> DatabaseError:
    """The one message for a damaged database: what failed, and the two ways out."""
    return DatabaseError(
        f"{path} is damaged: {what}. The collector will not serve it, since it would "
        "acknowledge batches it cannot keep. Restore the latest backup (`safeguard-collector "
        f"restore --data {path.parent} --from BACKUP`), or run `safeguard-collector recover "
        f"--data {path.parent}` to keep this file aside, copy what still reads into a new "
        "database and have the PCs send the rest again."
    )


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class AgentRecord:
    agent_id: str
    public_key: bytes
    hostname: str
    revoked_ms: int | None
    last_seq: int
    head_hash: bytes
    last_seen_ms: int | None
    clock_skew_ms: int | None = None  # the PC's clock minus ours, as last measured
    clock_measured_ms: int | None = None


_BATCH_COLUMNS = (
    "agent_id",
    "first_seq",
    "last_seq",
    "prev_hash",
    "head_hash",
    "nonce",
    "signature",
    "received_ms",
)
_BATCH_SCHEMA = pa.schema(
    list(
        zip(
            _BATCH_COLUMNS,
            (
                pa.string(),
                pa.uint64(),
                pa.uint64(),
                pa.binary(),
                pa.binary(),
                pa.binary(),
                pa.binary(),
                pa.int64(),
            ),
            strict=True,
        )
    )
)


class Store:
    def __init__(
        self, path: Path, read_only: bool = False, threads: int | None = None, check: bool = False
    ) -> None:
        """`threads`: DuckDB's worker threads (default: one per core). `check`: read every
        table in full first (collector/storage/db_check.py) and refuse a damaged database."""
        self.path = path
        self.checked: db_check.Checked | None = None
        config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": MEMORY_LIMIT}
        if threads is not None:
            config["threads"] = threads
        try:
            self.con = duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise DatabaseError(
                    f"{path} is in use by another process (is `safeguard-collector serve` "
                    "running without its admin socket?)"
                ) from None
            raise damaged(path, f"it cannot be opened ({_first_line(exc)})") from None
        except duckdb.Error as exc:
            if db_check.is_damage(exc) or "wal" in str(exc).lower():
                raise damaged(path, f"it cannot be opened ({_first_line(exc)})") from None
            raise DatabaseError(f"{path} cannot be opened: {exc}") from None
        if check:
            found = db_check.full_read(self.con)
            if isinstance(found, db_check.Damage):
                self.con.close()
                raise damaged(path, f"reading table {found.table} failed ({found.error})")
            self.checked = found
        if not read_only:
            self.migrate()
        path.chmod(0o600)

    def close(self) -> None:
        self.con.close()

    def sibling(self) -> Store:
        """A Store on a second connection to the same database, for another thread that writes
        tables this one does not (the incident engine's, collector/intake/ingest.py): DuckDB runs
        the two transactions side by side."""
        other = Store.__new__(Store)
        other.path, other.con = self.path, self.con.cursor()
        return other

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A second connection to the same database for read-only work on another thread
        (the console): DuckDB serves it concurrently with the writer, from committed data."""
        return self.con.cursor()

    def one(self, sql: str, params: list[Any]) -> int:
        """The single integer a statement returns (an INSERT ... RETURNING id)."""
        row = self.con.execute(sql, params).fetchone()
        if row is None:
            raise DatabaseError(f"no row from: {sql[:60]}")
        return int(row[0])

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.begin()
        try:
            yield self.con
        except BaseException:
            self.con.rollback()
            raise
        self.con.commit()

    def migrate(self) -> None:
        self.con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
        row = self.con.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] if row and row[0] is not None else 0
        for number, sql in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.transaction() as con:
                con.execute(sql)
                con.execute("INSERT INTO schema_version VALUES (?)", [number])
            log.info("store.migrated version=%d", number)

    # -- agents ---------------------------------------------------------------------------
    def insert_agent(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.con.execute(f"INSERT INTO agents ({cols}) VALUES ({marks})", list(row.values()))  # noqa: S608 -- column names are ours, values are bound

    def revoke_agent(self, agent_id: str, reason: str, at_ms: int) -> bool:
        found = self.con.execute(
            "UPDATE agents SET revoked_ms = ?, revoked_reason = ? "
            "WHERE agent_id = ? AND revoked_ms IS NULL RETURNING agent_id",
            [at_ms, reason, agent_id],
        ).fetchall()
        return bool(found)

    def agent_records(self) -> dict[str, AgentRecord]:
        rows = self.con.execute(
            "SELECT agent_id, public_key, hostname, revoked_ms, last_seq, head_hash, last_seen_ms, "
            "clock_skew_ms, clock_measured_ms FROM agents"
        ).fetchall()
        return {r[0]: AgentRecord(*r) for r in rows}

    def list_agents(self) -> list[dict[str, Any]]:
        cur = self.con.execute(
            "SELECT agent_id, hostname, os, version, enrolled_ms, last_seen_ms, last_seq, "
            "lower(hex(head_hash)) AS head_hash, revoked_ms, revoked_reason, clock_skew_ms, "
            "clock_measured_ms FROM agents "
            "ORDER BY hostname, agent_id"
        )
        return _dicts(cur)

    # -- tokens ---------------------------------------------------------------------------
    def insert_token(self, row: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO tokens (token_id, secret_hash, created_ms, expires_ms, max_uses, note) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                row["token_id"],
                row["secret_hash"],
                row["created_ms"],
                row["expires_ms"],
                row["max_uses"],
                row["note"],
            ],
        )

    def token(self, token_id: str) -> tuple[bytes, int, int, int] | None:
        row = self.con.execute(
            "SELECT secret_hash, expires_ms, max_uses, uses FROM tokens WHERE token_id = ?",
            [token_id],
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def use_token(self, token_id: str) -> None:
        self.con.execute("UPDATE tokens SET uses = uses + 1 WHERE token_id = ?", [token_id])

    # -- events and batches ---------------------------------------------------------------
    def append_events(self, rows: pa.Table | dict[str, list[Any]]) -> None:
        """Rows with collector/intake/event_table.py's columns, as a table or as lists."""
        if isinstance(rows, dict):
            n = len(next(iter(rows.values()), []))
            rows = pa.Table.from_pydict(
                {"clock_skew_ms": [None] * n, "malformed": [None] * n, **rows},
                schema=EVENT_SCHEMA,
            )
        self._insert_arrow("events", event_table.stored_columns(rows))

    def append_batches(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """(agent_id, first_seq, last_seq, prev_hash, head_hash, nonce, signature, received_ms)."""
        table = pa.Table.from_pylist(
            [dict(zip(_BATCH_COLUMNS, r, strict=True)) for r in rows], schema=_BATCH_SCHEMA
        )
        self._insert_arrow("batches", table)

    def set_heads(self, rows: Sequence[tuple[int, bytes, int, str]]) -> None:
        """(last_seq, head_hash, last_seen_ms, agent_id) for each agent that advanced."""
        cols = list(zip(*rows, strict=True))
        self.update_rows(
            "agents",
            {"last_seq": pa.array(cols[0], pa.uint64()), "head_hash": list(cols[1]),
             "last_seen_ms": list(cols[2]), "agent_id": list(cols[3])},
            key="agent_id",
        )  # fmt: skip

    def set_clocks(self, rows: Sequence[tuple[int | None, int, str]]) -> None:
        """(clock_skew_ms, clock_measured_ms, agent_id) for each agent measured anew."""
        cols = list(zip(*rows, strict=True))
        self.update_rows(
            "agents",
            {"clock_skew_ms": pa.array(cols[0], pa.int64()),
             "clock_measured_ms": pa.array(cols[1], pa.int64()), "agent_id": list(cols[2])},
            key="agent_id",
        )  # fmt: skip

    @contextmanager
    def _registered(self, name: str, table: pa.Table) -> Iterator[None]:
        """Expose an Arrow table to SQL for one statement. DuckDB refuses to register while an
        earlier result on the connection is unfinished (a fetchone() that stopped early), so
        finish it first with a statement of our own."""
        self.con.execute("SELECT 1").fetchall()
        self.con.register(name, table)
        try:
            yield
        finally:
            self.con.unregister(name)

    def append_rows(self, table_name: str, columns: dict[str, list[Any]]) -> None:
        """Bulk insert: one Arrow table, one statement, however many rows (bound multi-row
        VALUES cost DuckDB a parameter bind per value and were the collector's bottleneck).
        Columns are named; the table's other columns take their defaults."""
        with self._registered("incoming_rows", pa.table(columns)):
            names = ", ".join(columns)
            self.con.execute(
                f"INSERT INTO {table_name} ({names}) SELECT {names} FROM incoming_rows"  # noqa: S608 -- our own names
            )

    def upsert_rows(self, table_name: str, columns: dict[str, list[Any]], key: str) -> None:
        """Bulk insert, replacing the named columns of rows whose `key` already exists."""
        with self._registered("incoming_rows", pa.table(columns)):
            names = ", ".join(columns)
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
            self.con.execute(
                f"INSERT INTO {table_name} ({names}) SELECT {names} FROM incoming_rows "  # noqa: S608 -- our own names
                f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
            )

    def update_rows(self, table_name: str, columns: dict[str, Any], key: str) -> None:
        """Bulk update: set the named columns of the rows matched on `key`."""
        with self._registered("changed_rows", pa.table(columns)):
            sets = ", ".join(f"{c} = n.{c}" for c in columns if c != key)
            self.con.execute(
                f"UPDATE {table_name} SET {sets} FROM changed_rows n "  # noqa: S608 -- our own names
                f"WHERE {table_name}.{key} = n.{key}"
            )

    def _insert_arrow(self, table_name: str, table: pa.Table) -> None:
        with self._registered("incoming_rows", table):
            self.con.execute(f"INSERT INTO {table_name} SELECT * FROM incoming_rows")  # noqa: S608 -- our own table names


    def stored_hashes(self, agent_id: str, first_seq: int, last_seq: int) -> list[bytes]:
        rows = self.con.execute(
            "SELECT hash FROM events WHERE agent_id = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            [agent_id, first_seq, last_seq],
        ).fetchall()
        return [r[0] for r in rows]

    def add_tampering(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """(agent_id, kind, detail, first_seq, last_seq, detected_ms, evidence) each."""
        self.con.executemany(
            "INSERT INTO tampering (agent_id, kind, detail, first_seq, last_seq, detected_ms, "
            "evidence) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def add_flood_record(self, agent_id: str, detail: str, detected_ms: int) -> int:
        """The one record that counts an agent's refused batches beyond its hourly share."""
        row = self.con.execute(
            "INSERT INTO tampering (agent_id, kind, detail, first_seq, last_seq, detected_ms, "
            "evidence) VALUES (?, 'flood', ?, 0, 0, ?, NULL) RETURNING id",
            [agent_id, detail, detected_ms],
        ).fetchall()
        return int(row[0][0])

    def update_tampering_detail(self, record_id: int, detail: str) -> None:
        self.con.execute("UPDATE tampering SET detail = ? WHERE id = ?", [detail, record_id])

    # -- reading --------------------------------------------------------------------------
    def events(
        self, agent_id: str | None = None, limit: int = 100, after_seq: int = 0
    ) -> list[tuple[Any, ...]]:
        """The newest `limit` events (of one agent, or all), oldest first, with raw bytes."""
        where, args = (
            ("WHERE seq > ?", [after_seq])
            if agent_id is None
            else ("WHERE agent_id = ? AND seq > ?", [agent_id, after_seq])
        )
        return self.con.execute(
            f"SELECT * FROM (SELECT agent_id, seq, raw, hash, received_ms FROM events {where} "  # noqa: S608 -- fixed fragments
            "ORDER BY received_ms DESC, agent_id, seq DESC LIMIT ?) "
            "ORDER BY agent_id, seq",
            [*args, limit],
        ).fetchall()

    def event_range(self, agent_id: str, first: int, last: int) -> list[tuple[int, bytes, bytes]]:
        return [
            (r[0], r[1], r[2])
            for r in self.con.execute(
                "SELECT seq, raw, hash FROM events WHERE agent_id = ? AND seq BETWEEN ? AND ? "
                "ORDER BY seq",
                [agent_id, first, last],
            ).fetchall()
        ]

    def batches_covering(self, agent_id: str, first: int, last: int) -> list[tuple[Any, ...]]:
        return self.con.execute(
            "SELECT first_seq, last_seq, prev_hash, head_hash, nonce, signature FROM batches "
            "WHERE agent_id = ? AND last_seq >= ? AND first_seq <= ? ORDER BY first_seq",
            [agent_id, first, last],
        ).fetchall()

    def tampering(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        cur = self.con.execute(
            "SELECT id, agent_id, kind, detail, first_seq, last_seq, detected_ms, "
            "octet_length(evidence) AS evidence_bytes FROM tampering "
            "WHERE ? IS NULL OR agent_id = ? ORDER BY id",
            [agent_id, agent_id],
        )
        return _dicts(cur)

    def count_events(self, agent_id: str | None = None) -> int:
        if agent_id is None:
            row = self.con.execute("SELECT count(*) FROM events").fetchone()
        else:
            row = self.con.execute(
                "SELECT count(*) FROM events WHERE agent_id = ?", [agent_id]
            ).fetchone()
        return int(row[0]) if row else 0


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0]


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
