"""`safeguard-collector verify`: check everything the collector holds, and name each fault.

- every agent's events: each batch's Ed25519 signature against the enrolled key, the stored
  bytes chaining to each batch's signed head, the batches joining into one chain
  (collector/integrity/evidence.py), in slices so a large database is read a piece at a time;
- the audit log's chain (collector/integrity/audit.py);
- the incident records' chain, and every incident against its record
  (collector/integrity/records.py);
- both chains against the last checkpoint beside the database, and against any checkpoint
  heads the operator gives from an export or report (collector/integrity/anchors.py).

It reads only, through the running collector's admin socket when `serve` runs (on a reader of
its own, so ingest goes on) and straight from the file when it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from collector.integrity import anchors, audit, evidence, records
from collector.paths import DataDir

SLICE = 50_000  # seqs per evidence check: bounded memory however long an agent's chain is
MAX_NAMED = 20  # faults named per part; the rest counted


@dataclass
class Part:
    name: str
    checked: str  # what was checked, with counts
    faults: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        shown = self.faults[:MAX_NAMED]
        if len(self.faults) > len(shown):
            shown.append(f"and {len(self.faults) - len(shown)} more")
        return {"name": self.name, "checked": self.checked, "ok": not self.faults,
                "faults": shown}  # fmt: skip


def run(con: duckdb.DuckDBPyConnection, data: DataDir, given: list[str]) -> list[dict[str, Any]]:
    """Every part's result. `given`: checkpoint heads as "audit:SEQ:HASH" or "records:SEQ:HASH"
    copied from an export, a report or an email."""
    key = audit.load_key(data)
    parts = [_events(con), _audit(con, key), _records(con, key), _checkpoint(con, data)]
    if given:
        parts.append(_given(con, given))
    return [p.to_json() for p in parts]


def _events(con: duckdb.DuckDBPyConnection) -> Part:
    agents = con.execute(
        "SELECT agent_id, min(seq), max(seq), count(*) FROM events GROUP BY agent_id ORDER BY 1"
    ).fetchall()
    part = Part("events", "")
    verified = total = 0
    for agent_id, lo, hi, count in agents:
        total += int(count)
        for first in range(int(lo), int(hi) + 1, SLICE):
            last = min(first + SLICE - 1, int(hi))
            rc = evidence.check(evidence.load(con, agent_id, first, last))
            verified += sum(1 for v in rc.status.values() if v == evidence.VERIFIED)
            part.faults += [f"agent {agent_id}: {p}" for p in rc.problems]
    part.checked = (f"{verified} of {total} stored events of {len(agents)} agents verify: "
                    "signatures, chains and the links between batches")  # fmt: skip
    return part


def _audit(con: duckdb.DuckDBPyConnection, key: bytes) -> Part:
    v = audit.Audit(key).verify(con)
    part = Part("audit", f"{v.rows} audit entries chained")
    if not v.ok:
        part.faults.append(f"audit entry {v.first_bad}: {v.reason}")
    return part


def _records(con: duckdb.DuckDBPyConnection, key: bytes) -> Part:
    rc = records.check(con, key)
    return Part("records", f"{rc.entries} record entries chained; {rc.incidents} incidents "
                           "match their records", list(rc.faults))  # fmt: skip


def _checkpoint(con: duckdb.DuckDBPyConnection, data: DataDir) -> Part:
    cp = anchors.load(data)
    if cp is None:
        return Part("checkpoint", "no checkpoint beside the database yet (written by `serve`)")
    part = Part("checkpoint", f"the chains against the checkpoint of {anchors._when(cp.at_ms)}")
    if not anchors.signed_by_collector(data, cp):
        part.faults.append("the checkpoint beside the database is not signed by this collector")
    part.faults += anchors.problems(con, cp)
    return part


def _given(con: duckdb.DuckDBPyConnection, given: list[str]) -> Part:
    part = Part("given heads", f"{len(given)} head(s) given on the command line")
    for text in given:
        name, _, rest = text.partition(":")
        seq_text, _, digest = rest.partition(":")
        if name not in anchors.CHAINS or not seq_text.isdigit() or not digest:
            part.faults.append(f"{text!r} is not a head like audit:1234:3fa9... or records:...")
            continue
        seq = int(seq_text)
        found = anchors.hash_at(con, name, seq)
        if found is None:
            part.faults.append(f"the {name} chain has no entry {seq} any more (cut off?)")
        elif not found.startswith(digest.lower()):
            part.faults.append(f"the {name} chain's entry {seq} is not the one given: rewritten")
    return part
