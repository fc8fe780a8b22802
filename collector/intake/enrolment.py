"""Enrolment tokens and agent registration.

A token is `sgt_<id>_<secret>`; only SHA-256 of the secret is stored. An agent proves it holds
the private key it presents by signing the token with it, so a token seen in transit cannot be
used to register somebody else's key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature

from collector.paths import DataDir
from collector.storage.store import Store, now_ms
from protos import envelope

log = logging.getLogger(__name__)

MAX_TTL_S = 30 * 24 * 3600


class EnrolmentError(Exception):
    """Why an enrolment was refused, in words a technician can act on."""


@dataclass(frozen=True)
class Applicant:
    token: str
    public_key: bytes
    proof: bytes
    hostname: str
    os: str
    version: str


def new_token(store: Store, ttl_s: int, uses: int, note: str = "") -> dict[str, Any]:
    if not 60 <= ttl_s <= MAX_TTL_S:
        raise ValueError("a token lives between 1 minute and 30 days")
    if not 1 <= uses <= 10_000:
        raise ValueError("a token can be used between 1 and 10000 times")
    token_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    created = now_ms()
    store.insert_token(
        {
            "token_id": token_id,
            "secret_hash": hashlib.sha256(secret.encode()).digest(),
            "created_ms": created,
            "expires_ms": created + ttl_s * 1000,
            "max_uses": uses,
            "note": note,
        }
    )
    log.info("token.created id=%s uses=%d ttl_s=%d", token_id, uses, ttl_s)
    return {
        "token": f"sgt_{token_id}_{secret}",
        "token_id": token_id,
        "expires_ms": created + ttl_s * 1000,
        "uses": uses,
    }


def _check_token(store: Store, token: str) -> str:
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "sgt":
        raise EnrolmentError("the enrolment token is not in the form sgt_<id>_<secret>")
    token_id, secret = parts[1], parts[2]
    found = store.token(token_id)
    digest = hashlib.sha256(secret.encode()).digest()
    if found is None or not hmac.compare_digest(found[0], digest):
        raise EnrolmentError("the enrolment token is not known to this collector")
    _, expires_ms, max_uses, uses = found
    if now_ms() >= expires_ms:
        raise EnrolmentError(
            "the enrolment token has expired; make a new one with `safeguard-collector token`"
        )
    if uses >= max_uses:
        raise EnrolmentError(f"the enrolment token has been used up ({max_uses} of {max_uses})")
    return token_id


def agent_id_for(public_key: bytes) -> str:
    """An agent's id is its key's fingerprint, so the id itself names the key."""
    return "ag-" + hashlib.sha256(public_key).hexdigest()[:20]


def enrol(store: Store, data: DataDir, who: Applicant) -> str:
    try:
        key = envelope.public_key_from_raw(who.public_key)
        key.verify(who.proof, envelope.enrol_proof_payload(who.token, who.public_key))
    except (envelope.EnvelopeError, InvalidSignature):
        raise EnrolmentError("the enrolment proof does not match the public key") from None
    agent_id = agent_id_for(who.public_key)
    existing = store.agent_records().get(agent_id)
    if existing is not None:
        if existing.revoked_ms is not None:
            raise EnrolmentError("this agent key was revoked; enrol again with a new key")
        return agent_id  # a retry after a lost answer: same key, same agent
    with store.transaction():
        token_id = _check_token(store, who.token)
        store.use_token(token_id)
        row = {
            "agent_id": agent_id,
            "public_key": who.public_key,
            "hostname": who.hostname[:255],
            "os": who.os[:255],
            "version": who.version[:64],
            "token_id": token_id,
            "enrolled_ms": now_ms(),
            "head_hash": envelope.genesis(agent_id),
        }
        store.insert_agent(row)
        journal(data, {"op": "enrol", **row, "public_key": who.public_key.hex(), "head_hash": None})
    log.info("agent.enrolled agent=%s host=%s token=%s", agent_id, who.hostname, token_id)
    return agent_id


def revoke(store: Store, data: DataDir, agent_id: str, reason: str) -> bool:
    at = now_ms()
    with store.transaction():
        changed = store.revoke_agent(agent_id, reason, at)
        if changed:
            journal(
                data, {"op": "revoke", "agent_id": agent_id, "reason": reason, "revoked_ms": at}
            )
    if changed:
        log.warning("agent.revoked agent=%s", agent_id)
    return changed


def journal(data: DataDir, record: dict[str, Any]) -> None:
    """Append to the agents journal and fsync before the database commits."""
    import os

    fd = os.open(data.agents_journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def journalled_agents(data: DataDir) -> dict[str, dict[str, Any]]:
    """Every agent the journal enrolled, as agents-table rows, revocations applied."""
    if not data.agents_journal.exists():
        return {}
    agents: dict[str, dict[str, Any]] = {}
    for line in data.agents_journal.read_text().splitlines():
        record = json.loads(line)
        if record["op"] == "enrol":
            agents[record["agent_id"]] = record
        elif record["op"] == "revoke" and record["agent_id"] in agents:
            agents[record["agent_id"]]["revoked_ms"] = record["revoked_ms"]
            agents[record["agent_id"]]["revoked_reason"] = record["reason"]
    for rec in agents.values():
        rec.pop("op")
        rec["public_key"] = bytes.fromhex(rec["public_key"])
        rec["head_hash"] = envelope.genesis(rec["agent_id"])
    return agents


def replay_journal(store: Store, data: DataDir) -> int:
    """Re-register journalled agents in a new database (after `recover`). Returns the count."""
    agents = journalled_agents(data)
    with store.transaction():
        for rec in agents.values():
            store.insert_agent(rec)
    return len(agents)


def reconcile_journal(store: Store, data: DataDir) -> tuple[list[str], list[str]]:
    """Bring an older database (a restored backup) up to the journal: enrol the agents
    enrolled since, at the start of their chains, and revoke those revoked since. Returns
    (enrolled, revoked) agent ids."""
    known = store.agent_records()
    added, revoked = [], []
    with store.transaction():
        for agent_id, rec in journalled_agents(data).items():
            if agent_id not in known:
                store.insert_agent(rec)
                added.append(agent_id)
            elif rec.get("revoked_ms") and known[agent_id].revoked_ms is None:
                store.revoke_agent(agent_id, rec["revoked_reason"], rec["revoked_ms"])
                revoked.append(agent_id)
    return added, revoked
