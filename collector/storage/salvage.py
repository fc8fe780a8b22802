"""`recover`: keep a damaged database aside, copy into a new one every row that still reads, and
set each agent's chain head to what the new one can prove.

The damaged file (and its `.wal`) is renamed, never deleted or written; it is attached read-only
to a new database made by the migrations. Each table is copied whole if it reads; if not, by
ranges of row ids: a row group (122,880 rows) at a time, and a failing row group in 2,048-row
pieces, so a damaged 256 KiB block loses only the rows stored in it (tried on DuckDB 2.0.1:
a zeroed block cost 4 to 8 pieces of a row group). Of rows that do not read, the agent and seq
are read on their own where they can be (those columns live in other blocks), so the loss is
pinned to agents and seqs.

Heads: an agent's stored head tells it where to resend from (the Welcome), so it may name only
an event the new database holds with nothing lost before it. For an agent that lost events it
is the highest salvaged seq below the first lost one; for one that lost none, the head the old
database recorded. Events and batches past the head are left out (the PC sends them again; the
file kept aside still holds them), or the resend would store them twice. Agents come back from
agents.jsonl (the enrolment journal) as well as from the old agents table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from collector.intake import enrolment
from collector.paths import DataDir
from collector.storage import db_check
from collector.storage.store import Store, now_ms
from protos import envelope

log = logging.getLogger(__name__)

ROW_GROUP = 122_880  # DuckDB's rows per row group
PIECE = 2_048  # DuckDB's vector: the smallest range worth reading on its own
# Copied specially (the schema's own bookkeeping; agents rebuilt with their heads).
_SPECIAL = ("schema_version", "agents")


@dataclass
class TableResult:
    name: str
    copied: int = 0
    lost: int = 0
    held_back: int = 0  # past an agent's provable head: sent again by the PC


@dataclass
class AgentHead:
    agent_id: str
    before: int | None  # the old database's head, if its row read
    after: int
    lost: int  # event rows of this agent that did not read


@dataclass
class Salvage:
    aside: Path
    opened: bool  # False: nothing of the old file could be read at all
    why_not: str = ""
    tables: list[TableResult] = field(default_factory=list)
    heads: list[AgentHead] = field(default_factory=list)
    unattributed: int = 0  # lost event rows whose agent could not be read either
    agents: int = 0


def set_aside(data: DataDir) -> Path:
    """Rename the database and its WAL out of the way; never delete them."""
    aside = data.database.with_name(f"{data.database.name}.damaged-{now_ms()}")
    data.database.rename(aside)
    wal = data.database.with_name(data.database.name + ".wal")
    if wal.exists():
        wal.rename(aside.with_name(aside.name + ".wal"))
    log.warning("recover.set_aside file=%s", aside)
    return aside


def recover(data: DataDir) -> Salvage:
    aside = set_aside(data)
    store = Store(data.database)
    try:
        result = _attach(store.con, aside)
        if result is not None:
            enrolment.replay_journal(store, data)
            result.agents = len(store.agent_records())
            return result
        result = Salvage(aside, opened=True)
        try:
            _copy_all(store, data, result)
        finally:
            store.con.execute("DETACH old")
        return result
    finally:
        store.close()


def _attach(con: duckdb.DuckDBPyConnection, aside: Path) -> Salvage | None:
    """Attach the old file read-only. If it will not open with its WAL, try without the WAL
    (what the last checkpoint holds), keeping the WAL aside too. None: attached."""
    wal = aside.with_name(aside.name + ".wal")
    try:
        con.execute("ATTACH ? AS old (READ_ONLY)", [str(aside)])
        return None
    except duckdb.Error as exc:
        why = str(exc).strip().splitlines()[0]
    if wal.exists():
        wal.rename(wal.with_name(wal.name + "-unreplayed"))
        try:
            con.execute("ATTACH ? AS old (READ_ONLY)", [str(aside)])
            log.warning("recover.wal_unreadable why=%r", why)
            return None
        except duckdb.Error as exc:
            why = str(exc).strip().splitlines()[0]
    return Salvage(aside, opened=False, why_not=why)


def _copy_all(store: Store, data: DataDir, result: Salvage) -> None:
    con = store.con
    new_tables = set(db_check.tables(con))
    old_tables = db_check.tables(con, "old")
    lost_keys: list[tuple[str, int]] = []
    for name in old_tables:
        if name in _SPECIAL or name not in new_tables:
            continue
        table = TableResult(name)
        keys = ("agent_id", "seq") if name == "events" else ()
        lost_keys += _copy_table(con, name, table, keys, result)
        result.tables.append(table)
    old_agents = _old_agents(con, result)
    heads = _rebuild_agents(store, data, old_agents, lost_keys, result)
    _hold_back(con, heads, result)
    _advance_sequences(con)
    con.execute("CHECKPOINT")


def _ranges(con: duckdb.DuckDBPyConnection, name: str) -> Iterator[tuple[int, int]]:
    row = con.execute(f'SELECT max(rowid) FROM old.main."{name}"').fetchone()  # noqa: S608 -- catalogue names
    top = int(row[0]) if row and row[0] is not None else -1
    for lo in range(0, top + 1, ROW_GROUP):
        yield lo, min(lo + ROW_GROUP - 1, top)


def _copy_table(
    con: duckdb.DuckDBPyConnection, name: str, table: TableResult, keys: tuple[str, ...],
    result: Salvage,
) -> list[tuple[str, int]]:  # fmt: skip
    """Copy what reads; returns the (agent_id, seq) of lost rows whose keys still read."""
    new_cols = set(db_check.columns(con, name))
    cols = ", ".join(f'"{c}"' for c in db_check.columns(con, name, "old") if c in new_cols)
    insert = f'INSERT INTO main."{name}" ({cols}) SELECT {cols} FROM old.main."{name}"'  # noqa: S608 -- catalogue names
    if _try(con, insert) is not None:
        table.copied = _count(con, f'main."{name}"')
        return []
    failed: list[tuple[int, int]] = []
    for lo, hi in _ranges(con, name):
        if _try(con, f"{insert} WHERE rowid BETWEEN {lo} AND {hi}") is not None:
            continue
        for plo in range(lo, hi + 1, PIECE):
            phi = min(plo + PIECE - 1, hi)
            if _try(con, f"{insert} WHERE rowid BETWEEN {plo} AND {phi}") is None:
                failed.append((plo, phi))
    table.copied = _count(con, f'main."{name}"')
    lost: list[tuple[str, int]] = []
    for lo, hi in failed:
        where = f"WHERE rowid BETWEEN {lo} AND {hi}"
        table.lost += _count(con, f'old.main."{name}"', where)
        if keys:
            key_cols = ", ".join(keys)
            try:
                rows = con.execute(
                    f'SELECT {key_cols} FROM old.main."{name}" {where}'  # noqa: S608 -- ours
                ).fetchall()
                lost += [(str(r[0]), int(r[1])) for r in rows]
            except duckdb.Error:
                result.unattributed += _count(con, f'old.main."{name}"', where)
    log.warning("recover.table name=%s copied=%d lost=%d", name, table.copied, table.lost)
    return lost


def _try(con: duckdb.DuckDBPyConnection, sql: str) -> int | None:
    """Run one statement (its own transaction: a failure stores none of it)."""
    try:
        con.execute(sql)
        return 0
    except duckdb.Error as exc:
        if not db_check.is_damage(exc):
            raise
        return None


def _count(con: duckdb.DuckDBPyConnection, source: str, where: str = "") -> int:
    row = con.execute(f"SELECT count(*) FROM {source} {where}").fetchone()  # noqa: S608 -- ours
    return int(row[0]) if row else 0


def _old_agents(con: duckdb.DuckDBPyConnection, result: Salvage) -> dict[str, dict[str, object]]:
    """The old agents table's rows that read (a damaged one is read row by row)."""
    table = TableResult("agents")
    result.tables.append(table)
    select = "SELECT * FROM old.main.agents"
    try:
        cur = con.execute(select)
        names = [d[0] for d in cur.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except duckdb.Error:
        rows = []
        for lo, hi in _ranges(con, "agents"):
            for rid in range(lo, hi + 1):
                try:
                    cur = con.execute(f"{select} WHERE rowid = {rid}")
                    names = [d[0] for d in cur.description or []]
                    rows += [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
                except duckdb.Error:
                    table.lost += 1
    table.copied = len(rows)
    return {str(r["agent_id"]): r for r in rows}


def _rebuild_agents(
    store: Store, data: DataDir, old: dict[str, dict[str, object]],
    lost_keys: list[tuple[str, int]], result: Salvage,
) -> dict[str, int]:  # fmt: skip
    """Agents from the journal and the old table, each with the head it can prove."""
    enrolment.replay_journal(store, data)
    known = set(store.agent_records())
    for agent_id, old_row in old.items():
        if agent_id not in known:  # enrolled but not journalled (should not happen): keep it
            store.insert_agent({k: v for k, v in old_row.items() if k in _AGENT_COLUMNS})
    first_lost: dict[str, int] = {}
    lost_count: dict[str, int] = {}
    for agent_id, seq in lost_keys:
        first_lost[agent_id] = min(seq, first_lost.get(agent_id, seq))
        lost_count[agent_id] = lost_count.get(agent_id, 0) + 1
    heads: dict[str, int] = {}
    for agent_id in store.agent_records():
        row = old.get(agent_id)
        before = int(row["last_seq"]) if row is not None else None  # type: ignore[call-overload]
        seq, digest = _provable_head(store, agent_id, row, first_lost.get(agent_id),
                                     result.unattributed > 0)  # fmt: skip
        seen = row.get("last_seen_ms") if row is not None else None
        store.con.execute(
            "UPDATE agents SET last_seq = ?, head_hash = ?, last_seen_ms = ? WHERE agent_id = ?",
            [seq, digest, seen, agent_id],
        )
        heads[agent_id] = seq
        result.heads.append(AgentHead(agent_id, before, seq, lost_count.get(agent_id, 0)))
    result.agents = len(heads)
    return heads


_AGENT_COLUMNS = ("agent_id", "public_key", "hostname", "os", "version", "token_id",
                  "enrolled_ms", "revoked_ms", "revoked_reason", "last_seen_ms")  # fmt: skip


def _provable_head(
    store: Store, agent_id: str, old: dict[str, object] | None, first_lost: int | None,
    unattributed: bool,
) -> tuple[int, bytes]:  # fmt: skip
    """The old head if nothing of the agent was lost, else the highest event held before the
    first loss (or the genesis of its chain if none is)."""
    if old is not None and first_lost is None and not unattributed:
        return int(old["last_seq"]), bytes(old["head_hash"])  # type: ignore[call-overload]
    limit = int(old["last_seq"]) if old is not None else 2**63 - 1  # type: ignore[call-overload]
    if first_lost is not None:
        limit = min(limit, first_lost - 1)
    row = store.con.execute(
        "SELECT seq, hash FROM events WHERE agent_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
        [agent_id, limit],
    ).fetchone()
    if row is None:
        return 0, envelope.genesis(agent_id)
    return int(row[0]), bytes(row[1])


def _hold_back(con: duckdb.DuckDBPyConnection, heads: dict[str, int], result: Salvage) -> None:
    """Leave out events and batches past each agent's head: the PC sends them again."""
    if not heads:
        return
    con.execute("CREATE TEMP TABLE salvage_heads (agent_id VARCHAR, head UBIGINT)")
    con.executemany("INSERT INTO salvage_heads VALUES (?, ?)", list(heads.items()))
    for name, column in (("events", "seq"), ("batches", "first_seq")):
        row = con.execute(
            f"DELETE FROM {name} t USING salvage_heads h WHERE t.agent_id = h.agent_id "  # noqa: S608 -- ours
            f"AND t.{column} > h.head"
        ).fetchone()
        held = int(row[0]) if row else 0
        for table in result.tables:
            if table.name == name:
                table.held_back, table.copied = held, table.copied - held
    con.execute("DROP TABLE salvage_heads")


_NEXTVAL = re.compile(r"nextval\('([a-z_]+)'\)")


def _advance_sequences(con: duckdb.DuckDBPyConnection) -> None:
    """A new database's sequences start at 1; move each past the ids copied into its table."""
    rows = con.execute(
        "SELECT table_name, column_name, column_default FROM duckdb_columns() WHERE "
        "database_name = current_database() AND column_default LIKE 'nextval%'"
    ).fetchall()
    for table, column, default in rows:
        match = _NEXTVAL.search(default)
        if match is None:
            continue
        top = con.execute(f'SELECT max("{column}") FROM "{table}"').fetchone()  # noqa: S608 -- catalogue names
        if top and top[0]:
            sql = f"SELECT max(nextval('{match.group(1)}')) FROM range(?)"  # noqa: S608 -- catalogue name
            con.execute(sql, [int(top[0])])
