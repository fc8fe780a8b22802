"""Checkpoints of the audit and record chains, so their newest entries cannot be cut off quietly.

A chain proves that nothing *inside* it changed; deleting its newest entries leaves a shorter
chain that still verifies. A checkpoint is each chain's head (seq and hash), signed with the
collector's Ed25519 policy key (the key PCs already trust for policies). It is kept:

- beside the database, in DATA/anchors.json, rewritten every minute by the running collector
  (only after the chains are checked against the previous one), and at stop;
- off the host, in every incident export, the weekly report and each notification email: a
  copy the school holds elsewhere (a CPOMS attachment, a governors' pack) that
  `safeguard-collector verify --head` checks later;
- on every PC: each Welcome gives the agent the latest checkpoint, the agent keeps it
  (STATE/shipping.json) and hands it back in its next Hello, and the collector holds its
  chains to it (collector/intake/server.py). To cut the chains unseen one would have to reach every
  PC that saw a later checkpoint.

Attacker model: someone who can write the database file (a technician's mistake, a restored
backup, a rogue admin with file access) but not the key. Such a person can edit, delete or
reorder rows, and is caught by the chains; can delete the newest entries, and is caught by the
checkpoint beside the database, unless they also roll that file back; and cannot roll back the
copies in exports and reports that left the host. Someone who holds the collector's keys (root
on the collector) can re-sign anything on the host: only the copies off the host hold against
them, and only for what happened before the copy was made. A legitimate restore from a backup
makes the chains shorter than the checkpoint too: it is accepted by an explicit, audited step
(`safeguard-collector acknowledge-restore`), never silently.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

import duckdb
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector import pki
from collector.paths import DataDir, write_secret
from collector.storage.store import now_ms

log = logging.getLogger(__name__)

CHAINS = {"audit": "audit", "records": "incident_log"}  # name -> table


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str  # hex

    def text(self) -> str:
        return f"{self.seq}:{self.hash}"


@dataclass(frozen=True)
class Checkpoint:
    heads: dict[str, Head]
    at_ms: int
    signature: str = ""  # base64 Ed25519 over payload()
    # Checkpoints made before this (a restore acknowledged since) are not held against the
    # chains: PCs hand back the one they kept until they are given a newer one.
    acknowledged_ms: int = 0

    def payload(self) -> bytes:
        body = {name: h.text() for name, h in sorted(self.heads.items())}
        signed = {"at_ms": self.at_ms, "heads": body, "acknowledged_ms": self.acknowledged_ms}
        return json.dumps(signed, sort_keys=True).encode()

    def to_json(self) -> dict[str, Any]:
        return {"at_ms": self.at_ms, "heads": {k: h.text() for k, h in self.heads.items()},
                "signature": self.signature, "acknowledged_ms": self.acknowledged_ms}  # fmt: skip

    def line(self) -> str:
        """One line for a report or an export's footer."""
        heads = ", ".join(f"{k}:{h.seq}:{h.hash[:16]}" for k, h in sorted(self.heads.items()))
        return f"Chain checkpoint: {heads} (signed {self.signature[:16]}...)"


def heads(con: duckdb.DuckDBPyConnection) -> dict[str, Head]:
    out = {}
    for name, table in CHAINS.items():
        row = con.execute(f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()  # noqa: S608 -- our table names
        out[name] = Head(int(row[0]), bytes(row[1]).hex()) if row else Head(0, "")
    return out


def hash_at(con: duckdb.DuckDBPyConnection, name: str, seq: int) -> str | None:
    if seq == 0:
        return ""
    row = con.execute(f"SELECT hash FROM {CHAINS[name]} WHERE seq = ?", [seq]).fetchone()  # noqa: S608 -- our table names
    return None if row is None else bytes(row[0]).hex()


def make(data: DataDir, con: duckdb.DuckDBPyConnection, acknowledged_ms: int = 0) -> Checkpoint:
    """A new checkpoint of the chains now (acknowledged_ms: carried over from the last)."""
    if not acknowledged_ms and (last := load(data)) is not None:
        acknowledged_ms = last.acknowledged_ms
    unsigned = Checkpoint(heads(con), now_ms(), acknowledged_ms=acknowledged_ms)
    signature = pki.load_policy_key(data).sign(unsigned.payload())
    return Checkpoint(unsigned.heads, unsigned.at_ms, base64.b64encode(signature).decode(),
                      acknowledged_ms)  # fmt: skip


def parse(value: dict[str, Any]) -> Checkpoint:
    hs = {}
    for name, text in value["heads"].items():
        seq, _, digest = str(text).partition(":")
        hs[str(name)] = Head(int(seq), digest)
    return Checkpoint(hs, int(value["at_ms"]), str(value.get("signature", "")),
                      int(value.get("acknowledged_ms", 0)))  # fmt: skip


def signed_by_collector(data: DataDir, cp: Checkpoint) -> bool:
    key = Ed25519PublicKey.from_public_bytes(data.policy_pub.read_bytes())  # raw, as PCs get it
    try:
        key.verify(base64.b64decode(cp.signature), cp.payload())
    except (InvalidSignature, ValueError):
        return False
    return True


def problems(con: duckdb.DuckDBPyConnection, cp: Checkpoint) -> list[str]:
    """What the chains lack that the checkpoint saw: entries cut from their end, or rewritten."""
    out = []
    for name, head in sorted(cp.heads.items()):
        if name not in CHAINS:
            continue
        now = heads(con)[name]
        if now.seq < head.seq:
            out.append(f"the {name} chain ends at entry {now.seq} but a checkpoint signed "
                       f"{_when(cp.at_ms)} saw entry {head.seq}: {head.seq - now.seq} newest "
                       "entries are missing (deleted, or the database was restored from an "
                       "older backup)")  # fmt: skip
        elif hash_at(con, name, head.seq) != head.hash:
            out.append(f"the {name} chain's entry {head.seq} is not the one a checkpoint signed "
                       f"{_when(cp.at_ms)} saw: the chain was rewritten")  # fmt: skip
    return out


def _when(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def path(data: DataDir) -> Any:
    return data.root / "anchors.json"


def load(data: DataDir) -> Checkpoint | None:
    try:
        return parse(json.loads(path(data).read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.error("anchors.unreadable path=%s error=%s", path(data), exc)
        return None


def save(data: DataDir, cp: Checkpoint) -> None:
    write_secret(path(data), json.dumps(cp.to_json(), indent=1).encode())


def refresh(data: DataDir, con: duckdb.DuckDBPyConnection) -> list[str]:
    """Check the chains against the last checkpoint; if they hold, write a new one. Returns the
    problems (then the old checkpoint is kept, so the alarm stays until acknowledged)."""
    old = load(data)
    if old is not None:
        found = problems(con, old)
        if found:
            return found
    save(data, make(data, con))
    return []
