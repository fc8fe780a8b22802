"""The roster in the database: import an MIS export, look names up, say what the last import
did. Imports run on the single writer (the admin socket or the console's write queue).

Re-importing updates names, year and class; a pupil missing from a new import is marked left
(left_ms), shown as such, and deleted by retention (`purge_left`) once past the events period
with no incident still naming the account."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from collector.integrity.audit import Audit
from collector.roster import matching, mis_csv
from collector.roster.mis_csv import RosterFileError
from collector.storage.store import Store, now_ms

log = logging.getLogger(__name__)
LAST = "roster.last_import"
_generation = 0  # bumped by every change in this process; the console reloads its names


def generation() -> int:
    return _generation


def _changed() -> None:
    global _generation
    _generation += 1


@dataclass
class ImportResult:
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    left: int = 0
    returned: int = 0
    unmatched: list[str] = field(default_factory=list)  # "line 7: Amy Lee (no account named ...)"
    duplicates: list[str] = field(default_factory=list)
    at_ms: int = 0
    by: str = ""


def assign(
    rows: list[mis_csv.MisRow], naming: str | None, directory: str | None
) -> tuple[dict[str, mis_csv.MisRow], list[str], list[str]]:
    """account -> row, the unmatched rows and the duplicates, each as a sentence."""
    if (naming is None) == (directory is None):
        raise RosterFileError(
            "say how rows become accounts: a directory export (--accounts "
            'FILE) or a naming rule (--naming "{first}.{last}"), one of them.'
        )
    d = matching.read_directory(directory) if directory is not None else None
    if naming is not None:
        matching.check_rule(naming)
    unmatched: list[str] = []
    claims: dict[str, list[mis_csv.MisRow]] = {}
    for r in rows:
        who = f"line {r.line}: {r.first} {r.last}".strip()
        if not (r.first and r.last):
            unmatched.append(f"{who} (no forename or surname)")
            continue
        if d is not None:
            account, several = d.match(r)
            if not account:
                unmatched.append(f"{who} (" + (f"several accounts have this name: "
                                 f"{', '.join(several)}; add employeeID=UPN to tell them "
                                 "apart)" if several else "no account with this name in the "
                                 "accounts file)"))  # fmt: skip
                continue
        else:
            account = matching.by_rule(r, str(naming))
        claims.setdefault(account, []).append(r)
    duplicates = [
        f"{account}: lines {', '.join(str(r.line) for r in rs)} "
        f"({'; '.join(f'{r.first} {r.last}' for r in rs)}) - none imported; give them "
        "their accounts in an accounts file"
        for account, rs in claims.items()
        if len(rs) > 1
    ]
    return {a: rs[0] for a, rs in claims.items() if len(rs) == 1}, unmatched, duplicates


def import_csv(
    store: Store, audit: Audit, actor: str, text: str, naming: str | None = None,
    directory: str | None = None, now: int | None = None,
) -> ImportResult:  # fmt: skip
    rows = mis_csv.parse(text)
    matched, unmatched, duplicates = assign(rows, naming, directory)
    left_out = [r for r in rows if r not in matched.values()]
    if not matched:
        raise RosterFileError(
            f"no row of the {len(rows)} in the file matched an account, so nothing was changed "
            "(importing it would mark every pupil as left). Check the naming rule or the "
            "accounts file." + (f" First unmatched: {unmatched[0]}." if unmatched else "")
        )
    now = now or now_ms()
    res = ImportResult(rows=len(rows), unmatched=unmatched, duplicates=duplicates, at_ms=now,
                       by=actor)  # fmt: skip
    with store.transaction() as con:
        before = {r[0]: r[1:] for r in con.execute(
            "SELECT account, first, last, year, class, upn, staff, left_ms FROM roster"
        ).fetchall()}  # fmt: skip
        for account, r in matched.items():
            values = (r.first, r.last, r.year, r.klass, r.upn, r.staff)
            old = before.get(account)
            if old is None:
                res.added += 1
                con.execute("INSERT INTO roster VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                            [account, *values, now, now])  # fmt: skip
                continue
            if tuple(old[:6]) == values and old[6] is None:
                res.unchanged += 1
                continue
            res.updated += tuple(old[:6]) != values
            res.returned += old[6] is not None
            con.execute(
                "UPDATE roster SET first = ?, last = ?, year = ?, class = ?, upn = ?, staff = ?, "
                "updated_ms = ?, left_ms = NULL WHERE account = ?",
                [*values, now, account],
            )
        # A row left out (unmatched, duplicate) is still at the school: its namesakes stay.
        kept = {(matching.simple(r.first), matching.simple(r.last)) for r in left_out}
        gone = [a for a, old in before.items() if a not in matched and old[6] is None
                and (matching.simple(old[0]), matching.simple(old[1])) not in kept]  # fmt: skip
        if gone:
            con.execute("UPDATE roster SET left_ms = ? WHERE list_contains(?, account)",
                        [now, gone])  # fmt: skip
        res.left = len(gone)
        con.execute(
            "INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
            "excluded.value", [LAST, json.dumps(asdict(res))],
        )  # fmt: skip
        audit.append(store, actor, "roster_imported", "roster",
                     f"rows={res.rows} added={res.added} updated={res.updated} left={res.left} "
                     f"unmatched={len(unmatched)} duplicates={len(duplicates)}")  # fmt: skip
    _changed()
    log.info("roster.imported rows=%d added=%d updated=%d left=%d unmatched=%d",
             res.rows, res.added, res.updated, res.left, len(unmatched))  # fmt: skip
    return res


@dataclass(frozen=True)
class Entry:
    first: str
    last: str
    year: str
    klass: str
    staff: bool
    left: bool

    def label(self) -> str:
        """ "Cara Jones (Y5, 5B)"; staff and leavers say so."""
        if self.staff:
            where = ["staff"]
        else:
            where = [w for w in (f"Y{self.year}" if self.year and self.year not in "RN"
                                 else {"R": "Reception", "N": "Nursery"}.get(self.year, ""),
                                 self.klass) if w]  # fmt: skip
        if self.left:
            where.insert(0, "left")
        return f"{self.first} {self.last}" + (f" ({', '.join(where)})" if where else "")


def names(con: duckdb.DuckDBPyConnection) -> dict[str, Entry]:
    rows = con.execute(
        "SELECT account, first, last, year, class, staff, left_ms IS NOT NULL FROM roster"
    ).fetchall()
    return {r[0]: Entry(*r[1:]) for r in rows}


def shown(entries: dict[str, Entry], account: str | None) -> str:
    """ "Cara Jones (Y5, 5B) pupil.cara", or the account alone when the roster lacks it."""
    if not account:
        return ""
    e = entries.get(account) or entries.get(account.lower())
    return f"{e.label()} {account}" if e else account


def shown_one(con: duckdb.DuckDBPyConnection, account: str | None) -> str:
    return shown(names(con), account)


def summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row = con.execute(
        "SELECT count(*) FILTER (WHERE left_ms IS NULL AND NOT staff), count(*) FILTER (WHERE "
        "left_ms IS NULL AND staff), count(*) FILTER (WHERE left_ms IS NOT NULL) FROM roster"
    ).fetchone()
    last = con.execute("SELECT value FROM settings WHERE key = ?", [LAST]).fetchone()
    pupils, staff, left = row if row else (0, 0, 0)
    return {"pupils": pupils, "staff": staff, "left": left,
            "last": json.loads(last[0]) if last else None}  # fmt: skip


def purge_left(con: duckdb.DuckDBPyConnection, before_ms: int) -> int:
    """Leavers past the events period whose account no kept incident names (an incident's
    record would otherwise lose whose it is)."""
    row = con.execute(
        "DELETE FROM roster r WHERE left_ms IS NOT NULL AND left_ms < ? AND NOT EXISTS "
        "(SELECT 1 FROM incidents i WHERE i.account = r.account)",
        [before_ms],
    ).fetchone()
    n = int(row[0]) if row else 0
    if n:
        _changed()
    return n
