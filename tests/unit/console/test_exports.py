"""The CPOMS record renders: JSON, CSV and a PDF that reads back as text with pdftotext."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.accounts import Account
from collector.integrity import evidence
from collector.reporting import exports
from collector.storage.store import Store
from protos import envelope, events_pb2
from tests.conftest import require_tool

pytestmark = pytest.mark.unit


def _incident() -> dict[str, Any]:
    return {
        "id": 7,
        "account": "pupil.amy",
        "grp": "ks2",
        "first_ms": 1_750_000_000_000,
        "last_ms": 1_750_000_600_000,
        "categories": "extremism",
        "severity": 5,
        "summary": "site: extreme.example; search:google: join them",
        "escalation": "An extremist site followed by related searches.",
        "site": "Main",
        "room": "ICT suite",
        "hostname": "ict-03",
        "agent_id": "ag-1",
        "status": "closed",
        "outcome": "referred_prevent",
        "outcome_note": "Prevent lead informed",
        "closed_by": "hana",
        "suppressed": 0,
        "evidence": [
            {
                "observed_ms": 1_750_000_000_000,
                "source": "keyword",
                "category": "extremism",
                "severity": 4,
                "agent_id": "ag-1",
                "seq": 3,
                "hash": "ab" * 32,
                "event": {
                    "keyword": {"terms": ["join them"], "context": "how do i join them <online>"}
                },
            }
        ],
        "actions": [
            {
                "at_ms": 1_750_000_700_000,
                "by_user": "dana",
                "kind": "verification",
                "text": "Evidence verified: all 1 events ...",
                "due_date": None,
                "done_ms": None,
            }
        ],
        "referrals": [
            {
                "outcome": "referred_prevent",
                "state": "confirmed",
                "requested_by": "dana",
                "confirmed_by": "hana",
                "requested_ms": 1_750_000_700_000,
                "confirmed_ms": 1_750_000_800_000,
            }
        ],
    }


def test_json_and_csv_records_carry_the_incident_form() -> None:
    who = Account("hana", "Hana Head", "head")
    rec = json.loads(exports.render(_incident(), "json", who)[0])
    assert rec["schema"] == exports.SCHEMA and rec["student"] == "pupil.amy"
    assert rec["location"]["room"] == "ICT suite" and rec["outcome"] == "Referred: Prevent/Channel"
    assert rec["referrals"][0]["confirmed_by"] == "hana"
    assert rec["chain_proof"].startswith("Evidence verified")
    rows = dict(csv.reader(io.StringIO(exports.render(_incident(), "csv", who)[0].decode())))
    assert rows["student"] == "pupil.amy" and rows["severity"] == "5"


def test_pdf_reads_back_as_text(tmp_path: Path) -> None:
    require_tool("pdftotext")
    pdf = tmp_path / "incident.pdf"
    pdf.write_bytes(exports.render(_incident(), "pdf", Account("hana", "Hana Head", "head"))[0])
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for expected in (
        "Safeguarding incident record #7",
        "pupil.amy",
        "ICT suite",
        "Referred: Prevent/Channel",
        "how do i join them <online>",
        "confirmed by hana",
        "Exported by Hana Head",
    ):
        assert expected in text, expected


# -- the chain proof ---------------------------------------------------------------------------


def test_the_exported_chain_rule_is_the_one_envelope_implements() -> None:
    dom = {k: bytes.fromhex(v) for k, v in exports.CHAIN_RULE["domains_hex"].items()}
    prev, raw, agent_id = b"\x01" * 32, b"event bytes", "ag-1"
    assert hashlib.sha256(dom["event"] + prev + raw).digest() == envelope.link(prev, raw)
    assert hashlib.sha256(dom["genesis"] + agent_id.encode()).digest() == envelope.genesis(agent_id)
    nonce, head = b"\x02" * 16, b"\x03" * 32
    layout = b"".join(
        (dom["batch"], agent_id.encode(), b"\0", nonce, struct.pack(">QQ", 4, 9), prev, head)
    )
    assert layout == envelope.batch_payload(agent_id, nonce, 4, 9, prev, head)
    for name, text in (("event", "sg-event-v1"), ("genesis", "sg-genesis-v1")):
        assert dom[name] == text.encode() + b"\0"
        assert f'"{text}\\0"' in exports.CHAIN_RULE[name if name == "genesis" else "event_hash"]


_KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)


def _stored_chain(store: Store, agent_id: str, batches: list[tuple[int, int]]) -> list[bytes]:
    """Store seqs 1..n as the collector would, signed in the given (first, last) batches;
    returns every event's hash."""
    store.insert_agent(
        {"agent_id": agent_id, "public_key": _KEY.public_key().public_bytes_raw(),
         "hostname": "ict-03", "os": "linux", "version": "0.1.0", "token_id": "t",
         "enrolled_ms": 1, "head_hash": envelope.genesis(agent_id)}
    )  # fmt: skip
    n = max(last for _, last in batches)
    raws = [
        envelope.event_bytes(events_pb2.Event(seq=s, event_id=f"e{s}", account="pupil.amy"))
        for s in range(1, n + 1)
    ]
    hashes = envelope.chain(envelope.genesis(agent_id), raws)
    for seq, (raw, h) in enumerate(zip(raws, hashes, strict=True), start=1):
        store.con.execute(
            "INSERT INTO events (agent_id, seq, event_id, kind, severity, account, observed_ms, "
            "received_ms, raw, hash) VALUES (?, ?, ?, 'keyword', 3, 'pupil.amy', 1, 1, ?, ?)",
            [agent_id, seq, f"e{seq}", raw, h],
        )
    for first, last in batches:
        prev = envelope.genesis(agent_id) if first == 1 else hashes[first - 2]
        b = envelope.make_batch(_KEY, agent_id, b"\x05" * 16, first, prev, raws[first - 1 : last])
        store.append_batches(
            [(agent_id, first, last, prev, b.head_hash, b"\x05" * 16, b.signature, 1)]
        )
    return hashes


def _with_evidence(inc: dict[str, Any], agent_id: str, seqs: list[int]) -> dict[str, Any]:
    ev = inc["evidence"][0]
    inc["evidence"] = [{**ev, "agent_id": agent_id, "seq": s} for s in seqs]
    return inc


def test_json_export_carries_a_proof_a_third_party_can_check(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    try:
        hashes = _stored_chain(store, "ag-1", [(1, 2), (3, 3), (4, 6), (7, 8)])
        inc = _with_evidence(_incident(), "ag-1", [4, 7])
        who = Account("hana", "Hana Head", "head")
        rec = json.loads(exports.render(inc, "json", who, store.con)[0])
        proof = rec["chain_proof"], rec["chain_proof_data"]
        csv_body = exports.render(inc, "csv", who, store.con)[0].decode()
    finally:
        store.close()
    assert proof[0] == "Evidence verified: all 1 events ..."  # the last check, as before
    data = proof[1]
    assert data["result"] == proof[0] and data["verified_by"] == "dana" and data["verified_at"]
    assert data["checked_at_export"].startswith("Evidence verified: all 2 events")
    assert data["rule"] == exports.CHAIN_RULE
    [agent] = data["agents"]
    assert agent["public_key"] == _KEY.public_key().public_bytes_raw().hex()
    assert agent["genesis"] == envelope.genesis("ag-1").hex()
    assert agent["evidence_seqs"] == [4, 7]
    assert agent["before"] == {"seq": 3, "hash": hashes[2].hex()}
    assert [(b["first_seq"], b["last_seq"]) for b in agent["batches"]] == [(4, 6), (7, 8)]
    assert agent["batches"][1]["prev_hash"] == hashes[5].hex()
    assert [e["seq"] for e in agent["events"] if e["evidence"]] == [4, 7]
    assert [e["seq"] for e in agent["events"]] == [4, 5, 6, 7, 8]
    for e in agent["events"]:
        assert e["hash"] == hashes[e["seq"] - 1].hex()
        if not e["evidence"]:  # other detections on the PC: not this incident's to export
            assert "raw" not in e and "hash only" in e["withheld"]
            continue
        raw = base64.b64decode(e["raw"])
        assert events_pb2.Event.FromString(raw).seq == e["seq"]
    # CSV and PDF carry a summary; the full proof is the JSON's.
    csv_rows = dict(csv.reader(io.StringIO(csv_body)))
    assert (
        "2 evidence events among 5 stored events in 2 signed batches"
        in csv_rows["chain_proof_data"]
    )


def test_without_the_database_the_record_still_says_the_last_check() -> None:
    rec = exports.record(_incident(), Account("hana", "Hana Head", "head"))
    assert rec["chain_proof_data"]["result"].startswith("Evidence verified")
    assert rec["chain_proof_data"]["agents"] == []


def test_pdf_summarises_the_chain_proof(tmp_path: Path) -> None:
    require_tool("pdftotext")
    store = Store(tmp_path / "db.duckdb")
    try:
        _stored_chain(store, "ag-1", [(1, 3)])
        inc = _with_evidence(_incident(), "ag-1", [2])
        body = exports.render(inc, "pdf", Account("hana", "Hana Head", "head"), store.con)[0]
    finally:
        store.close()
    pdf = tmp_path / "incident.pdf"
    pdf.write_bytes(body)
    text = " ".join(
        subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "Chain proof" in text and "signed batches" in text, text
    assert "fingerprint" in text and "full proof" in text, text


def _check(store: Store, first: int, last: int) -> evidence.RangeCheck:
    return evidence.check(evidence.load(store.con, "ag-1", first, last))


def test_check_follows_resent_overlapping_batches_and_purged_history(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    try:
        # 4..6 was re-sent as 4..8 after 4..6 was stored; both batches are rows.
        _stored_chain(store, "ag-1", [(1, 3), (4, 6), (4, 8), (9, 9)])
        whole = _check(store, 2, 9)
        # Retention purged 1..3 (a whole batch): the range's first batches (4..6 and its
        # re-send 4..8) have nothing stored to join, which is not a failure.
        store.con.execute("DELETE FROM events WHERE seq <= 3")
        purged = _check(store, 5, 9)
    finally:
        store.close()
    assert whole.ok and set(whole.status.values()) == {"verified"}, whole
    assert purged.ok and sorted(purged.status) == [5, 6, 7, 8, 9], purged


def test_check_names_a_chain_that_does_not_start_at_genesis(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    try:
        _stored_chain(store, "ag-1", [(1, 2), (3, 3)])
        store.con.execute("UPDATE batches SET prev_hash = ? WHERE first_seq = 1", [b"\0" * 32])
        rc = _check(store, 1, 3)
    finally:
        store.close()
    assert not rc.ok
    assert "batch 1..2: prev_hash is not this agent's genesis" in rc.problems, rc
    assert rc.status[3].startswith("chain broken before this event"), rc
