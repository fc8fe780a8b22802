"""What the CLI can ask of a collector's data, whether the collector is running or not.

Each operation takes the Store and returns plain JSON-able data, so the admin socket
(collector/admin.py) and a direct open of the database give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from google.protobuf import json_format

from collector import policy
from collector.console import config as console_config
from collector.console import operations as console_operations
from collector.intake import clock, enrolment
from collector.integrity import anchors, audit, checkup, evidence
from collector.paths import DataDir
from collector.storage import backup, db_check
from collector.storage.store import Store, damaged, now_ms
from protos import events_pb2

Operation = Callable[[Store, DataDir, dict[str, Any]], Any]

# Operations that enrol or revoke, so a running collector refreshes who may ship.
CHANGES_AGENTS = frozenset({"revoke"})


def op_token(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    return enrolment.new_token(store, int(args["ttl_s"]), int(args["uses"]), args.get("note", ""))


def op_agents(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    """Each agent, with `clock_skewed`: its last measured clock beyond the limit."""
    limit = clock_limit_ms(data)
    rows = store.list_agents()
    for r in rows:
        r["clock_skewed"] = clock.skewed(r["clock_skew_ms"], limit)
    return rows


def clock_limit_ms(data: DataDir) -> int:
    """console.toml's clock_skew_minutes (a damaged file: the default; `serve` says why)."""
    try:
        return console_config.load(data).clock_skew_limit_ms
    except ValueError:
        return clock.DEFAULT_LIMIT_MS


def op_revoke(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    return {"revoked": enrolment.revoke(store, data, args["agent_id"], args.get("reason", ""))}


def op_tampering(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    return store.tampering(args.get("agent_id"))


def op_events(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    rows = store.events(
        args.get("agent_id"), int(args.get("limit", 100)), int(args.get("after_seq", 0))
    )
    proofs: dict[str, dict[int, str]] = {}
    by_agent: dict[str, list[int]] = {}
    for agent_id, seq, *_ in rows:
        by_agent.setdefault(agent_id, []).append(seq)
    for agent_id, seqs in by_agent.items():
        proofs[agent_id] = evidence.verify_range(store, agent_id, min(seqs), max(seqs))
    out = []
    for agent_id, seq, raw, digest, received_ms in rows:
        event = events_pb2.Event()
        event.ParseFromString(raw)
        out.append(
            {
                "agent_id": agent_id,
                "seq": seq,
                "received_ms": received_ms,
                "hash": digest.hex(),
                "chain": proofs[agent_id].get(seq, "unverified"),
                "event": json_format.MessageToDict(event, preserving_proto_field_name=True),
            }
        )
    return out


def op_exemptions_approved(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    return policy.approved_exemptions(store)


def op_count(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    return {"events": store.count_events(args.get("agent_id"))}


def op_backup(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    return backup.snapshot(store, Path(args["to"]))


def op_acknowledge_restore(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    """A restore from backup made on purpose: the chains are shorter than the checkpoint; say
    so in the audit log, with the old and new heads, and take a new checkpoint."""
    old = anchors.load(data)
    found = anchors.problems(store.con, old) if old is not None else []
    before = ", ".join(f"{k} {h.text()}" for k, h in old.heads.items()) if old else "none"
    now = ", ".join(f"{k} {h.text()}" for k, h in anchors.heads(store.con).items())
    audit.Audit(audit.load_key(data)).append(
        store, args.get("actor") or "cli", "restore_acknowledged", "chains",
        f"reason={args.get('reason', '')!r} checkpoint_was=[{before}] chains_now=[{now}] "
        f"problems={len(found)}",
    )  # fmt: skip
    anchors.save(data, anchors.make(data, store.con, acknowledged_ms=now_ms()))
    return {"problems": found, "checkpoint_was": before, "chains_now": now}


OPERATIONS: dict[str, Operation] = {
    "acknowledge_restore": op_acknowledge_restore,
    "backup": op_backup,
    "token": op_token,
    "agents": op_agents,
    "revoke": op_revoke,
    "tampering": op_tampering,
    "events": op_events,
    "count": op_count,
    "exemptions_approved": op_exemptions_approved,
}
# Console accounts, incidents, retention and the audit log (collector/console/operations.py).
OPERATIONS.update(console_operations.OPERATIONS)


# Operations that only read, and may take long: a running collector runs them on a reader of
# their own (collector/admin.py), so ingest goes on meanwhile.
Reading = Callable[[duckdb.DuckDBPyConnection, DataDir, dict[str, Any]], Any]
READS: dict[str, Reading] = {
    "verify": lambda con, data, args: checkup.run(con, data, list(args.get("heads", []))),
}


def run(store: Store, data: DataDir, op: str, args: dict[str, Any]) -> Any:
    if op not in OPERATIONS and op not in READS:
        raise ValueError(f"unknown operation {op!r}")
    try:
        if op in READS:
            return READS[op](store.con, data, args)
        return OPERATIONS[op](store, data, args)
    except duckdb.Error as exc:
        if db_check.is_damage(exc):  # a damaged block met on the way: say so, not a traceback
            raise damaged(store.path, f"a read failed ({str(exc).splitlines()[0]})") from None
        raise

