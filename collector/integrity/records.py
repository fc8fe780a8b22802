"""Incident records under the chain discipline: every change is an append-only, chained entry.

An incident's row in `incidents` (and its rows in `incident_actions` and `referrals`) is what
the console reads; `incident_log` is the record those rows must agree with. Each change appends
one entry: the engine's creation of a candidate (its machine, pupil, category, severity) and
each rise in its severity or change of category; each triage step, note, outcome, follow-up,
referral request, confirmation and withdrawal, with who and when; a purge at the end of
retention. `check` folds the entries back into what each incident must be and names every row
that differs: an edited pupil or severity, a rewritten note, a forged `confirmed_by`.

Each entry's hash is HMAC-SHA256 (the audit log's key, secrets/audit.key) over the previous hash
and the entry's header, which holds the SHA-256 of its fields, not the fields: a purge deletes
the fields of a closed incident's entries (retention applies to the record too) and the chain
still verifies. Entries are written on the collector's writer (triage) and judge (engine)
threads, which never run at once (collector/intake/ingest.py: a call waits until every commit is
judged), so the chain never forks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from collector.storage.store import Store, now_ms

GENESIS = hashlib.sha256(b"sg-incident-record-v1").digest()
ENGINE = "engine"  # the actor of the engine's entries

# The incidents columns the record vouches for, and what sets each.
RECORDED = ("kind", "agent_id", "account", "category", "severity", "status", "outcome",
            "outcome_note", "closed_by", "cpoms_ref", "concern", "assigned_to")  # fmt: skip


def canonical(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _digest(key: bytes, prev: bytes, header: list[Any]) -> bytes:
    return hmac.new(key, prev + canonical(header).encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Entry:
    incident_id: int
    kind: str
    fields: dict[str, Any]
    actor: str = ENGINE


def append(store: Store, key: bytes, entries: Iterable[Entry]) -> int:
    """Chain and insert the entries (inside the caller's transaction). Returns the last seq."""
    con = store.con
    last = con.execute("SELECT seq, hash FROM incident_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(last[0]), bytes(last[1])) if last else (0, GENESIS)
    rows = []
    at = now_ms()
    for e in entries:
        seq += 1
        body = canonical(e.fields)
        fields_hash = hashlib.sha256(body.encode()).hexdigest()
        digest = _digest(key, prev, [seq, e.incident_id, at, e.actor, e.kind, fields_hash])
        rows.append((seq, e.incident_id, at, e.actor, e.kind, body, fields_hash, prev, digest))
        prev = digest
    if rows:
        con.executemany("INSERT INTO incident_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return seq


def purge(store: Store, key: bytes, incident_ids: list[int], actor: str) -> None:
    """Retention: forget the incidents' recorded fields (their hashes stay in the chain) and
    record that they were purged, so their absence is expected."""
    if not incident_ids:
        return
    store.con.execute(
        "UPDATE incident_log SET fields = NULL WHERE list_contains(?, incident_id)",
        [incident_ids],
    )
    append(store, key, [Entry(i, "purged", {}, actor) for i in incident_ids])


# -- checking --------------------------------------------------------------------------------


@dataclass
class Expected:
    """One incident as its entries say it must be."""

    fields: dict[str, Any] = field(default_factory=dict)
    actions: dict[int, dict[str, Any]] = field(default_factory=dict)
    referrals: dict[int, dict[str, Any]] = field(default_factory=dict)
    gone: bool = False  # purged, or rebuilt away by a re-run
    redacted: bool = False


@dataclass
class RecordCheck:
    entries: int = 0
    incidents: int = 0
    head: tuple[int, bytes] = (0, GENESIS)
    faults: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.faults


def fold(kind: str, fields: dict[str, Any], into: Expected) -> None:
    """Apply one entry to an incident's expected state."""
    if kind in ("purged", "rebuilt_away"):
        into.gone = True
    into.fields.update({k: v for k, v in fields.items() if k in RECORDED})
    if kind == "adopted":  # an incident made before the record existed: its rows as they were
        into.actions.update({int(a["id"]): a for a in fields.get("actions", [])})
        into.referrals.update({int(r["id"]): r for r in fields.get("referrals", [])})
    if "action" in fields:
        action = fields["action"]
        into.actions[int(action["id"])] = action
    if "done" in fields:
        into.actions.setdefault(int(fields["done"]), {})["done"] = True
    if "referral" in fields:
        ref = fields["referral"]
        into.referrals.setdefault(int(ref["id"]), {}).update(ref)


def check(
    con: duckdb.DuckDBPyConnection, key: bytes, incident_id: int | None = None
) -> RecordCheck:
    """Verify the chain, then every incident against what its entries say. With incident_id,
    only that incident's entries (each against its own stored link: cheap enough for every page
    view); the whole chain's continuity, which finds deleted newest entries, without."""
    result = RecordCheck()
    expected: dict[int, Expected] = {}
    prev, want = GENESIS, 1
    cur = con.execute("SELECT seq, incident_id, at_ms, actor, kind, fields, fields_hash, "
                      "prev_hash, hash FROM incident_log WHERE ? IS NULL OR incident_id = ? "
                      "ORDER BY seq", [incident_id, incident_id])  # fmt: skip
    whole = incident_id is None
    while rows := cur.fetchmany(10_000):
        for seq, iid, at, actor, kind, body, fields_hash, prev_hash, digest in rows:
            result.entries += 1
            if whole and seq != want:
                result.faults.append(f"record entries {want}..{seq - 1} are missing")
            elif whole and bytes(prev_hash) != prev:
                result.faults.append(f"record entry {seq} does not follow the one before it")
            if not hmac.compare_digest(
                _digest(key, bytes(prev_hash), [seq, iid, at, actor, kind, fields_hash]),
                bytes(digest),
            ):
                result.faults.append(f"record entry {seq} (incident {iid}, {kind}) was changed")
            state = expected.setdefault(int(iid), Expected())
            if body is None:
                state.redacted = True
            elif hashlib.sha256(body.encode()).hexdigest() != fields_hash:
                result.faults.append(f"record entry {seq} (incident {iid}, {kind}): its "
                                     "fields were changed")  # fmt: skip
            else:
                fold(kind, json.loads(body), state)
            prev, want = bytes(digest), seq + 1
    result.head = (want - 1, prev)
    for iid, state in expected.items():
        if state.redacted and not state.gone:
            result.faults.append(f"incident {iid}: its record's fields were deleted")
    ids = [incident_id] if incident_id is not None else None
    _compare(con, expected, ids, result)
    return result


def _compare(con: duckdb.DuckDBPyConnection, expected: dict[int, Expected],
             ids: list[int] | None, result: RecordCheck) -> None:  # fmt: skip
    cols = ", ".join(RECORDED)
    rows = con.execute(f"SELECT id, {cols} FROM incidents WHERE ? IS NULL OR list_contains(?, id)",  # noqa: S608 -- our column names
                       [ids, ids]).fetchall()  # fmt: skip
    seen = set()
    for row in rows:
        iid = int(row[0])
        seen.add(iid)
        result.incidents += 1
        state = expected.get(iid)
        if state is None or not state.fields:
            result.faults.append(f"incident {iid} has no record: it was not made by the engine")
            continue
        for name, value in zip(RECORDED, row[1:], strict=True):
            want = state.fields.get(name)
            if name in state.fields and _norm(value) != _norm(want):
                result.faults.append(f"incident {iid}: {name} is {value!r} but the record says "
                                     f"{want!r}")  # fmt: skip
        _compare_actions(con, iid, state, result)
        _compare_referrals(con, iid, state, result)
    for iid, state in expected.items():
        if (ids is None or iid in ids) and iid not in seen and not state.gone:
            result.faults.append(f"incident {iid} is in the record but missing from the table")


def _compare_actions(con: duckdb.DuckDBPyConnection, iid: int, state: Expected,
                     result: RecordCheck) -> None:  # fmt: skip
    rows = con.execute("SELECT id, kind, text, due_date, by_user, done_ms IS NOT NULL "
                       "FROM incident_actions WHERE incident_id = ?", [iid]).fetchall()  # fmt: skip
    found = set()
    for aid, kind, text, due, by_user, done in rows:
        found.add(int(aid))
        want = state.actions.get(int(aid))
        if want is None or "text" not in want:
            result.faults.append(f"incident {iid}: {kind} {aid} by {by_user} is not in the record")
            continue
        got = {"kind": kind, "text": text, "due": due, "by": by_user}
        _differences(f"incident {iid}: {kind} {aid}'s", got, want, result)
        if bool(done) != bool(want.get("done")):
            result.faults.append(f"incident {iid}: follow-up {aid} is "
                                 f"{'done' if done else 'open'} but the record says "
                                 f"{'done' if want.get('done') else 'open'}")  # fmt: skip
    for aid, want in state.actions.items():
        if aid not in found and "text" in want:
            result.faults.append(f"incident {iid}: {want.get('kind')} {aid} was deleted")


def _compare_referrals(con: duckdb.DuckDBPyConnection, iid: int, state: Expected,
                       result: RecordCheck) -> None:  # fmt: skip
    rows = con.execute("SELECT id, outcome, note, requested_by, confirmed_by, state "
                       "FROM referrals WHERE incident_id = ?", [iid]).fetchall()  # fmt: skip
    found = set()
    for rid, outcome, note, requested_by, confirmed_by, ref_state in rows:
        found.add(int(rid))
        want = state.referrals.get(int(rid))
        if want is None:
            result.faults.append(f"incident {iid}: referral {rid} is not in the record")
            continue
        got = {"outcome": outcome, "note": note, "requested_by": requested_by,
               "confirmed_by": confirmed_by, "state": ref_state}  # fmt: skip
        _differences(f"incident {iid}: referral {rid}'s", got, want, result)
    for rid in state.referrals:
        if rid not in found:
            result.faults.append(f"incident {iid}: referral {rid} was deleted")


def _differences(what: str, got: dict[str, Any], want: dict[str, Any],
                 result: RecordCheck) -> None:  # fmt: skip
    """Name each field of a row that is not what its record says."""
    for name, value in got.items():
        if _norm(want.get(name)) != _norm(value):
            result.faults.append(f"{what} {name} is {value!r} but the record says "
                                 f"{want.get(name)!r}")  # fmt: skip


def _norm(value: Any) -> Any:
    if value is None or value == "":
        return None
    return str(value) if not isinstance(value, bool | int) else value


# -- entries the triage steps write ---------------------------------------------------------


def action_fields(action_id: int, kind: str, text: str, due: Any, by: str) -> dict[str, Any]:
    return {"action": {"id": action_id, "kind": kind, "text": text, "due": _norm(due), "by": by}}


def adopt_missing(store: Store, key: bytes) -> int:
    """Incidents made before the record existed get one 'adopted' entry with their rows as they
    are now, so they are checked from here on. Returns how many."""
    con = store.con
    cols = ", ".join(RECORDED)
    rows = con.execute(f"SELECT id, {cols} FROM incidents i WHERE NOT EXISTS "  # noqa: S608 -- our column names
                       "(SELECT 1 FROM incident_log l WHERE l.incident_id = i.id) "
                       "ORDER BY id").fetchall()  # fmt: skip
    entries = []
    for row in rows:
        iid = int(row[0])
        actions = [{"id": a, "kind": k, "text": t, "due": _norm(d), "by": b, "done": bool(done)}
                   for a, k, t, d, b, done in con.execute(
                       "SELECT id, kind, text, due_date, by_user, done_ms IS NOT NULL FROM "
                       "incident_actions WHERE incident_id = ?", [iid]).fetchall()]  # fmt: skip
        refs = [{"id": r, "outcome": o, "note": n, "requested_by": q, "confirmed_by": c,
                 "state": s} for r, o, n, q, c, s in con.execute(
                     "SELECT id, outcome, note, requested_by, confirmed_by, state FROM referrals "
                     "WHERE incident_id = ?", [iid]).fetchall()]  # fmt: skip
        fields = dict(zip(RECORDED, row[1:], strict=True))
        entries.append(Entry(iid, "adopted", {**fields, "actions": actions, "referrals": refs},
                             "migration"))  # fmt: skip
    if entries:
        with store.transaction():
            append(store, key, entries)
    return len(entries)
