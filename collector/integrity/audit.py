"""The append-only, hash-chained audit log of the console: every view and every action.

Each row's hash is HMAC-SHA256, under a key kept in the data folder's secrets (0600), over the
previous row's hash and the row's own fields in a canonical form. Editing, deleting or inserting
a row breaks the chain from that row on, and without the key a rewritten chain cannot be made to
verify. Rows are written only on the single writer thread, so the chain never forks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from collector.paths import DataDir, secret_key
from collector.storage.store import Store, now_ms

GENESIS = hashlib.sha256(b"sg-audit-v1").digest()


def load_key(data: DataDir) -> bytes:
    return secret_key(data, "audit.key")


def _digest(key: bytes, prev: bytes, row: tuple[Any, ...]) -> bytes:
    seq, at_ms, actor, action, target, detail = row
    body = json.dumps([seq, at_ms, actor, action, target, detail], separators=(",", ":"))
    return hmac.new(key, prev + body.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Verification:
    ok: bool
    rows: int
    first_bad: int | None = None  # the seq of the first row that does not verify
    reason: str = ""


class Audit:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def append(self, store: Store, actor: str, action: str, target: str, detail: str = "") -> int:
        """Add one row (on the writer thread). Returns its seq."""
        con = store.con
        last = con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        row = (seq, now_ms(), actor, action, target, detail)
        con.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [*row, prev, _digest(self.key, prev, row)],
        )
        return int(seq)

    def verify(self, con: duckdb.DuckDBPyConnection) -> Verification:
        cur = con.execute(
            "SELECT seq, at_ms, actor, action, target, detail, prev_hash, hash FROM audit "
            "ORDER BY seq"
        )
        prev, expected_seq, n = GENESIS, 1, 0
        while rows := cur.fetchmany(10_000):
            for r in rows:
                n += 1
                if r[0] != expected_seq:
                    return Verification(False, n, r[0], f"row {expected_seq} is missing")
                if r[6] != prev:
                    return Verification(False, n, r[0], "does not follow the previous row")
                if not hmac.compare_digest(_digest(self.key, prev, tuple(r[:6])), r[7]):
                    return Verification(False, n, r[0], "this row was changed after it was written")
                prev, expected_seq = r[7], expected_seq + 1
        return Verification(True, n)


def read(
    con: duckdb.DuckDBPyConnection,
    limit: int = 200,
    before: int | None = None,
    target: str | None = None,
) -> list[dict[str, Any]]:
    cur = con.execute(
        "SELECT seq, at_ms, actor, action, target, detail FROM audit "
        "WHERE (? IS NULL OR seq < ?) AND (? IS NULL OR target = ?) ORDER BY seq DESC LIMIT ?",
        [before, before, target, target, limit],
    )
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
