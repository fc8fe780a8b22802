"""Verify evidence against tampered storage: real signed batches shipped to a running
collector, then storage changed behind its back (through the collector's own writer thread),
then the DSL's Verify evidence button over HTTP. Each way of tampering must be reported as a
failure that names what is wrong, while an untouched incident on another machine still
verifies; and the JSON export's chain proof must let a third party, with nothing but hashlib
and an Ed25519 library, reach the same verdict.

Layout of the tampered agent's chain (one signed batch per line):

    seq 1      heartbeat                      the stored event before the evidence range
    seq 2      self-harm detection A          evidence
    seq 3      heartbeat                      not evidence, inside the range
    seq 4, 5   self-harm detections B and C   evidence, one batch
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector.storage.store import Store
from protos import envelope
from tests.integration.console.support import Agent, Client, ConsoleHarness, heartbeat, keyword

pytestmark = pytest.mark.integration

_VERIFY = re.compile(r'<p class="verify (ok|bad)">(.*?) <span class="muted">', re.S)


@dataclass
class Scene:
    console: ConsoleHarness
    dsl: Client
    agent: Agent
    incident: int
    other: int  # an untouched incident on another machine

    def verify(self, iid: int | None = None) -> tuple[str, str]:
        """Press Verify evidence; the verdict's class ("ok" or "bad") and its text."""
        status, page = self.dsl.post(f"/incidents/{self.incident if iid is None else iid}/verify")
        assert status == 200
        found = _VERIFY.findall(page)
        assert found, "no verification result on the incident page"
        cls, text = found[-1]
        return cls, html.unescape(text)

    def export(self, iid: int | None = None) -> dict[str, Any]:
        _, body, _ = self.dsl.get_bytes(
            f"/incidents/{self.incident if iid is None else iid}/export.json"
        )
        record: dict[str, Any] = json.loads(body)
        return record

    def tamper(self, fn: Callable[[Store, str], None]) -> None:
        self.console.with_store(lambda s: fn(s, self.agent.agent_id))

    def audit_results(self) -> list[str]:
        rows = self.console.with_store(
            lambda s: s.con.execute(
                "SELECT detail FROM audit WHERE action = 'verify_evidence' ORDER BY seq"
            ).fetchall()
        )
        return [r[0] for r in rows]


def _incident_of(console: ConsoleHarness, account: str) -> dict[str, Any]:
    rows = [r for r in console.op("incidents", status="")["rows"] if r["account"] == account]
    assert len(rows) == 1, rows
    return dict(rows[0])


@pytest.fixture
def scene(console: ConsoleHarness) -> Scene:
    agent = Agent.enrol(console)
    agent.ship(heartbeat())
    agent.ship(keyword("self_harm", ["cut myself"], context="i want to cut myself tonight"))
    agent.ship(heartbeat())
    agent.ship(
        keyword("self_harm", ["hurt myself"], context="how to hurt myself"),
        keyword("self_harm", ["end it"], context="i just want to end it"),
    )
    other = Agent.enrol(console)
    other.ship(keyword("bullying", ["loser"], account="pupil.ben", context="ben is a loser"))
    amy = _incident_of(console, "pupil.amy")
    assert amy["event_count"] == 3
    dsl = Client(console.url)
    dsl.login("dsl")
    return Scene(console, dsl, agent, amy["id"], _incident_of(console, "pupil.ben")["id"])


# -- tampering, as someone with write access to the database would ----------------------------


def _batch(s: Store, agent_id: str, first: int) -> tuple[Any, ...]:
    row = s.con.execute(
        "SELECT first_seq, last_seq, prev_hash, head_hash, nonce, signature FROM batches "
        "WHERE agent_id = ? AND first_seq = ?",
        [agent_id, first],
    ).fetchone()
    assert row is not None
    return tuple(row)


def _raw(s: Store, agent_id: str, seq: int) -> bytes:
    row = s.con.execute(
        "SELECT raw FROM events WHERE agent_id = ? AND seq = ?", [agent_id, seq]
    ).fetchone()
    assert row is not None
    return bytes(row[0])


def _resign_from(agent: Agent, first: int, prev_hash: bytes) -> Callable[[Store, str], None]:
    """Replace batch `first` by one the agent's own key signs, chained from `prev_hash`: a batch
    that is perfect on its own (signature, chain, stored hashes) but does not join the chain."""

    def run(s: Store, agent_id: str) -> None:
        b_first, b_last, _, _, nonce, _ = _batch(s, agent_id, first)
        raws = [_raw(s, agent_id, seq) for seq in range(b_first, b_last + 1)]
        hashes = envelope.chain(prev_hash, raws)
        signature = agent.sim.key.sign(
            envelope.batch_payload(agent_id, nonce, b_first, b_last, prev_hash, hashes[-1])
        )
        for seq, h in zip(range(b_first, b_last + 1), hashes, strict=True):
            s.con.execute(
                "UPDATE events SET hash = ? WHERE agent_id = ? AND seq = ?", [h, agent_id, seq]
            )
        s.con.execute(
            "UPDATE batches SET prev_hash = ?, head_hash = ?, signature = ? "
            "WHERE agent_id = ? AND first_seq = ?",
            [prev_hash, hashes[-1], signature, agent_id, b_first],
        )

    return run


def _change_context(s: Store, agent_id: str) -> None:
    """Rewrite what the pupil typed in detection B; the bytes still parse as an event."""
    raw = _raw(s, agent_id, 4)
    assert b"hurt myself" in raw
    s.con.execute(
        "UPDATE events SET raw = ? WHERE agent_id = ? AND seq = 4",
        [raw.replace(b"hurt myself", b"hurt mysel!"), agent_id],
    )


def _flip_signature(s: Store, agent_id: str) -> None:
    signature = bytearray(_batch(s, agent_id, 2)[5])
    signature[0] ^= 0x01
    s.con.execute(
        "UPDATE batches SET signature = ? WHERE agent_id = ? AND first_seq = 2",
        [bytes(signature), agent_id],
    )


def _delete_event(seq: int, with_batch: bool = False) -> Callable[[Store, str], None]:
    def run(s: Store, agent_id: str) -> None:
        s.con.execute("DELETE FROM events WHERE agent_id = ? AND seq = ?", [agent_id, seq])
        if with_batch:
            s.con.execute(
                "DELETE FROM batches WHERE agent_id = ? AND first_seq = ?", [agent_id, seq]
            )

    return run


def _set_prev_hash(s: Store, agent_id: str) -> None:
    s.con.execute(
        "UPDATE batches SET prev_hash = ? WHERE agent_id = ? AND first_seq = 4",
        [os.urandom(32), agent_id],
    )


# -- a third party's check of the exported proof, with nothing from this project ---------------


def reverify(proof: dict[str, Any]) -> list[str]:
    """Re-check `chain_proof_data` from the export alone; what fails, or [] when it holds."""
    rule = proof["rule"]
    domain = {k: bytes.fromhex(v) for k, v in rule["domains_hex"].items()}
    assert domain["event"] == b"sg-event-v1\0" and 'SHA-256("sg-event-v1\\0"' in rule["event_hash"]
    problems: list[str] = []
    for a in proof["agents"]:
        agent = a["agent_id"].encode()
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(a["public_key"]))
        raw = {e["seq"]: base64.b64decode(e["raw"]) for e in a["events"] if "raw" in e}
        withheld = {e["seq"] for e in a["events"] if "withheld" in e}
        stored = {e["seq"]: bytes.fromhex(e["hash"]) for e in a["events"]}
        before = a["before"]
        last, head = (before["seq"], bytes.fromhex(before["hash"])) if before else (None, b"")
        covered: set[int] = set()
        for b in a["batches"]:
            first, final = b["first_seq"], b["last_seq"]
            name = f"batch {first}..{final}"
            prev, signed_head = bytes.fromhex(b["prev_hash"]), bytes.fromhex(b["head_hash"])
            payload = b"".join(
                (domain["batch"], agent, b"\0", bytes.fromhex(b["nonce"]),
                 struct.pack(">QQ", first, final), prev, signed_head)
            )  # fmt: skip
            try:
                key.verify(bytes.fromhex(b["signature"]), payload)
            except InvalidSignature:
                problems.append(f"{name}: signature")
            if first == 1:
                if prev != hashlib.sha256(domain["genesis"] + agent).digest():
                    problems.append(f"{name}: genesis")
            elif last == first - 1:
                if prev != head:
                    problems.append(f"{name}: link")
            elif last is not None:
                problems.append(f"{name}: hole")
            h = prev
            for seq in range(first, final + 1):
                if seq in withheld:  # another record: follow the chain from its hash
                    h = stored[seq]
                    continue
                if seq not in raw:
                    problems.append(f"{name}: seq {seq} missing")
                    break
                h = hashlib.sha256(domain["event"] + h + raw[seq]).digest()
                if h != stored[seq]:
                    problems.append(f"{name}: seq {seq} hash")
            else:
                if h != signed_head:
                    problems.append(f"{name}: head")
            covered.update(range(first, final + 1))
            last, head = final, signed_head
        problems += [f"seq {s}: not in a batch" for s in a["evidence_seqs"] if s not in covered]
        problems += [f"seq {s}: not exported" for s in a["evidence_seqs"] if s not in raw]
    return problems


# -- the tests -----------------------------------------------------------------------------------


def test_untouched_evidence_verifies_and_its_export_reverifies_independently(
    scene: Scene,
) -> None:
    cls, text = scene.verify()
    assert cls == "ok" and text.startswith("Evidence verified: all 3 events"), text
    assert scene.audit_results() == ["ok"]
    record = scene.export()
    assert record["chain_proof"].startswith("Evidence verified: all 3 events")
    proof = record["chain_proof_data"]
    assert proof["result"] == record["chain_proof"] and proof["verified_by"] == "dsl"
    assert proof["checked_at_export"].startswith("Evidence verified: all 3 events")
    [agent] = proof["agents"]
    assert agent["agent_id"] == scene.agent.agent_id
    assert bytes.fromhex(agent["public_key"]) == scene.agent.sim.key.public_key().public_bytes_raw()
    assert agent["evidence_seqs"] == [2, 4, 5]
    assert agent["before"]["seq"] == 1
    assert [(b["first_seq"], b["last_seq"]) for b in agent["batches"]] == [(2, 2), (3, 3), (4, 5)]
    assert [(e["seq"], e["evidence"]) for e in agent["events"]] == [
        (2, True), (3, False), (4, True), (5, True),
    ]  # fmt: skip
    hashes = {e["seq"]: e["hash"] for e in record["evidence"]}
    assert {e["seq"]: e["hash"] for e in agent["events"] if e["evidence"]} == hashes
    assert reverify(proof) == []


@pytest.mark.parametrize(
    ("tamper", "named", "third_party"),
    [
        pytest.param(
            _change_context,
            "batch 4..5: stored bytes do not hash to the signed head (first difference at seq 4)",
            ["batch 4..5: seq 4 hash", "batch 4..5: head"],
            id="event-bytes-changed",
        ),
        pytest.param(
            _flip_signature,
            "batch 2..2: batch signature does not verify",
            ["batch 2..2: signature"],
            id="batch-signature-changed",
        ),
        pytest.param(
            _delete_event(3),
            "batch 3..3: events missing from storage (seq 3)",
            ["batch 3..3: seq 3 missing"],
            id="middle-event-deleted",
        ),
        pytest.param(
            _delete_event(3, with_batch=True),
            "batch 4..5: chain has a hole before it: seq 3 in no stored batch",
            ["batch 4..5: hole"],
            id="middle-event-and-its-batch-deleted",
        ),
        pytest.param(
            _delete_event(4),
            "seq 4: event no longer stored",
            ["batch 4..5: seq 4 missing", "seq 4: not exported"],
            id="evidence-event-deleted",
        ),
        pytest.param(
            _set_prev_hash,
            "batch 4..5: prev_hash is not the signed head of the batch before it (ending at seq 3)",
            ["batch 4..5: signature", "batch 4..5: link"],
            id="prev-hash-changed",
        ),
    ],
)
def test_tampered_storage_fails_verification_and_says_what(
    scene: Scene,
    tamper: Callable[[Store, str], None],
    named: str,
    third_party: list[str],
) -> None:
    scene.tamper(tamper)
    cls, text = scene.verify()
    assert cls == "bad" and text.startswith("Evidence check FAILED"), text
    assert named in text, text
    record = scene.export()
    assert record["chain_proof"] == text
    assert record["chain_proof_data"]["checked_at_export"].startswith("Evidence check FAILED")
    got = reverify(record["chain_proof_data"])
    assert all(p in got for p in third_party), got
    # The other machine's incident is untouched and still verifies.
    cls, text = scene.verify(scene.other)
    assert cls == "ok" and text.startswith("Evidence verified: all 1 events"), text
    assert scene.audit_results() == ["failed", "ok"]


def test_a_validly_signed_batch_that_does_not_join_the_chain_fails(scene: Scene) -> None:
    """The agent's own key signs a batch 3..3 from another chain; on its own it is perfect."""
    scene.tamper(_resign_from(scene.agent, 3, os.urandom(32)))
    cls, text = scene.verify()
    assert cls == "bad", text
    assert "batch 3..3: prev_hash is not the signed head of the batch before it" in text, text
    assert "batch 4..5: prev_hash is not the signed head of the batch before it" in text, text
    assert "batch signature" not in text and "do not hash" not in text, text
    # 2 is whole and joins seq 1; 4 and 5 are signed but no longer tied to it.
    assert "(1 of 3 events verified)" in text, text
    got = reverify(scene.export()["chain_proof_data"])
    assert got == ["batch 3..3: link", "batch 4..5: link"], got


def test_the_first_batch_must_join_the_stored_event_before_the_range(scene: Scene) -> None:
    scene.tamper(_resign_from(scene.agent, 2, os.urandom(32)))
    cls, text = scene.verify()
    assert cls == "bad", text
    assert "batch 2..2: prev_hash is not the hash of the stored event before it (seq 1)" in text
    assert "batch 3..3: prev_hash is not the signed head of the batch before it" in text, text
    assert "(0 of 3 events verified)" in text, text
    got = reverify(scene.export()["chain_proof_data"])
    assert got == ["batch 2..2: link", "batch 3..3: link"], got
