"""A CPOMS-ready record of one incident (PDF, JSON, CSV), and re-verifying its evidence.

CPOMS takes an incident as: the pupil, what happened, categories, date and time, location,
actions taken and by whom. `record()` builds exactly that from a candidate, with each evidence
event's hash and the result of the last chain check (`chain_proof`). Given the database, the
JSON also carries `chain_proof_data`: the raw bytes, hashes, batches, signatures and the agent's
key, with the rules that join them, so anyone can re-verify the evidence without the collector.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import json
from typing import Any

import duckdb
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from collector.accounts import Account
from collector.incidents.triage import OUTCOMES, STATUSES
from collector.integrity import anchors, evidence, records
from collector.integrity.audit import Audit
from collector.reporting import export_screenshots
from collector.roster import book
from collector.storage.store import Store, now_ms
from protos import envelope

SCHEMA = "safeguard-monitor/cpoms-incident/v1"


def _pdf_time(e: dict[str, Any]) -> str:
    """The PC's time; for a skewed PC also the collector's (the PC's clock was off)."""
    if e.get("time_corrected") is None:
        return str(e["time"])
    return (f"{e['time']} (PC clock, {e['clock_skew_s']:+.0f} s off); "
            f"{e['time_corrected']} by the collector's clock")  # fmt: skip


def _iso(ms: int | None) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone().isoformat(timespec="seconds")


VERIFIED_PREFIX = "Evidence verified"
_MAX_PROBLEMS = 8

# The chain rules, as a third party needs them (protos/envelope.py is the implementation;
# tests/unit/console/test_exports.py holds the two to each other).
_EVENT_DOMAIN = b"sg-event-v1\0"
_GENESIS_DOMAIN = b"sg-genesis-v1\0"
_BATCH_DOMAIN = b"sg-batch-v1\0"
CHAIN_RULE: dict[str, Any] = {
    "encoding": "hashes, keys, nonces and signatures are lowercase hex; raw event bytes are "
    "base64 (RFC 4648, padded); | is concatenation; \\0 is one zero byte",
    "domains_hex": {
        "event": _EVENT_DOMAIN.hex(),
        "genesis": _GENESIS_DOMAIN.hex(),
        "batch": _BATCH_DOMAIN.hex(),
    },
    "genesis": 'h[0] = SHA-256("sg-genesis-v1\\0" | agent_id as UTF-8)',
    "event_hash": 'h[n] = SHA-256("sg-event-v1\\0" | h[n-1] | raw bytes of event n)',
    "batch": "a batch signs events first_seq..last_seq: prev_hash = h[first_seq - 1], and "
    "chaining its raw events from prev_hash gives each event's hash, the last being head_hash",
    "batch_signature": 'Ed25519 (RFC 8032) by public_key over "sg-batch-v1\\0" | agent_id as '
    "UTF-8 | \\0 | nonce (16 bytes) | first_seq (8 bytes, big-endian) | last_seq (8 bytes, "
    "big-endian) | prev_hash (32 bytes) | head_hash (32 bytes)",
    "links": "a batch with first_seq 1 has prev_hash = h[0]; any other batch's prev_hash is the "
    "head_hash of the listed batch ending at first_seq - 1, or for the first listed batch the "
    "hash in `before` when given; every event from the first to the last evidence seq is in a "
    "listed batch",
    "event_bytes": "each raw event is the deterministic protobuf serialisation of "
    "safeguard.v1.Event (protos/events.proto), whose seq field is its seq",
    "withheld": "an event marked withheld is another record in the same batch (another "
    "pupil's detection, a heartbeat naming who is logged in): only its hash is given. Follow "
    "the chain from that hash; what lies between it and the events around it cannot be "
    "re-derived from this file (the collector's own check, above, re-derives every event)",
}


def _evidence_seqs(rows: list[tuple[str, int]]) -> dict[str, list[int]]:
    """Each agent's evidence seqs, sorted, once each."""
    by_agent: dict[str, set[int]] = {}
    for agent_id, seq in rows:
        by_agent.setdefault(agent_id, set()).add(int(seq))
    return {a: sorted(seqs) for a, seqs in by_agent.items()}


def summary(
    by_agent: dict[str, list[int]], checks: dict[str, evidence.RangeCheck]
) -> tuple[bool, str]:
    """(all good, the sentence a DSL reads) for evidence seqs per agent and their checks."""
    total = sum(len(seqs) for seqs in by_agent.values())
    if total == 0:
        return True, "No stored events to verify (this candidate is not built from events)."
    verified = 0
    problems: list[str] = []
    for agent_id, seqs in sorted(by_agent.items()):
        prefix = f"agent {agent_id}: " if len(by_agent) > 1 else ""
        rc = checks[agent_id]
        for seq in seqs:
            verdict = rc.status.get(seq)
            if verdict == evidence.VERIFIED:
                verified += 1
            elif verdict is None:
                problems.append(f"{prefix}seq {seq}: event no longer stored")
        problems += [prefix + p for p in rc.problems]
    if not problems and verified == total:
        return True, (
            f"{VERIFIED_PREFIX}: all {total} events hash into their agent's chain, every batch "
            "signature checks against the enrolled key, and the batches link up unbroken."
        )
    if not problems:  # not expected: every failed status comes with a named problem
        problems = [f"{total - verified} events not verified"]
    shown = problems[:_MAX_PROBLEMS]
    if len(problems) > len(shown):
        shown.append(f"and {len(problems) - len(shown)} more")
    return False, (
        f"Evidence check FAILED ({verified} of {total} events verified): {'; '.join(shown)}."
    )


def check_incident(
    con: duckdb.DuckDBPyConnection, by_agent: dict[str, list[int]]
) -> tuple[dict[str, evidence.Material], dict[str, evidence.RangeCheck]]:
    material = {a: evidence.load(con, a, min(s), max(s)) for a, s in by_agent.items()}
    return material, {a: evidence.check(m) for a, m in material.items()}


def verify_incident(store: Store, audit: Audit, who: Account, incident_id: int) -> str:
    """Re-check every evidence event's chain, batch signature and the links between the batches
    from storage (on the writer thread, so the check sees exactly what is stored); record and
    return the result."""
    by_agent = _evidence_seqs(
        store.con.execute(
            # seq 0: a signal with no event (tampering, a silent agent); events start at 1
            "SELECT agent_id, seq FROM incident_signals WHERE incident_id = ? AND seq > 0",
            [incident_id],
        ).fetchall()
    )
    _, checks = check_incident(store.con, by_agent)
    ok, text = summary(by_agent, checks)
    record = records.check(store.con, audit.key, incident_id)
    if not record.ok:
        ok, text = False, f"{text} {record_summary(record)}"
    with store.transaction():
        action_id = store.one(
            "INSERT INTO incident_actions (incident_id, kind, text, by_user, at_ms) "
            "VALUES (?, 'verification', ?, ?, ?) RETURNING id",
            [incident_id, text, who.username, now_ms()],
        )
        fields = records.action_fields(action_id, "verification", text, None, who.username)
        entry = records.Entry(incident_id, "verification", fields, who.username)
        records.append(store, audit.key, [entry])
        audit.append(
            store,
            who.username,
            "verify_evidence",
            f"incident:{incident_id}",
            "ok" if ok else "failed",
        )
    return text


def record_summary(record: records.RecordCheck) -> str:
    """One sentence on an incident's record check, naming what does not match."""
    if record.ok:
        return (f"Record as recorded: all {record.entries} entries of its record verify and the "
                "incident matches them.")  # fmt: skip
    shown = record.faults[:_MAX_PROBLEMS]
    more = len(record.faults) - len(shown)
    return ("Record check FAILED: " + "; ".join(shown) + (f"; and {more} more" if more else "")
            + ".")  # fmt: skip


def chain_proof(con: duckdb.DuckDBPyConnection, inc: dict[str, Any]) -> dict[str, Any]:
    """What a third party needs to re-verify the evidence: per agent its key, every stored event
    (raw bytes and hash) of the signed batches that cover the evidence, those batches, and the
    hash just before them; with the rules, and the result of checking it all now."""
    by_agent = _evidence_seqs(
        [(s["agent_id"], s["seq"]) for s in inc["evidence"] if s["seq"]]  # 0: no event
    )
    material, checks = check_incident(con, by_agent)
    _, text = summary(by_agent, checks)
    return {
        "checked_at_export": text,
        "rule": CHAIN_RULE,
        "agents": [_agent_proof(material[a], by_agent[a]) for a in sorted(by_agent)],
    }


def _agent_proof(m: evidence.Material, seqs: list[int]) -> dict[str, Any]:
    wanted = set(seqs)
    before = m.before_seq
    return {
        "agent_id": m.agent_id,
        "public_key": m.public_key.hex() if m.public_key is not None else None,
        "genesis": envelope.genesis(m.agent_id).hex(),
        "evidence_seqs": sorted(wanted),
        "before": None if before is None else {"seq": before, "hash": m.events[before][1].hex()},
        "batches": [
            {
                "first_seq": b.first_seq,
                "last_seq": b.last_seq,
                "prev_hash": b.prev_hash.hex(),
                "head_hash": b.head_hash.hex(),
                "nonce": b.nonce.hex(),
                "signature": b.signature.hex(),
            }
            for b in m.batches
        ],
        "events": [
            _proof_event(seq, raw, digest, seq in wanted)
            for seq, (raw, digest) in sorted(m.events.items())
            if seq >= m.lo
        ],
    }


def _proof_event(seq: int, raw: bytes, digest: bytes, evidence: bool) -> dict[str, Any]:
    """One event of a covering batch. The other records in the same batches are not this
    incident's to export: another pupil's detection on the same PC, and even heartbeats and
    status events name accounts (who is logged in, whose keyboard helper stopped). Only their
    hash is given, so the chain can be followed from it, but not re-derived through it."""
    out: dict[str, Any] = {"seq": seq, "evidence": evidence, "hash": digest.hex()}
    if evidence:
        out["raw"] = base64.b64encode(raw).decode()
    else:
        out["withheld"] = "another record, not part of this incident: hash only"
    return out


def proof_summary(proof: dict[str, Any]) -> str:
    """A few lines for the PDF and CSV: what the JSON's chain_proof_data holds."""
    parts = []
    for a in proof.get("agents", []):
        batches, events = a["batches"], a["events"]
        key = a["public_key"]
        fp = hashlib.sha256(bytes.fromhex(key)).hexdigest()[:16] if key else "none"
        span = f"seqs {batches[0]['first_seq']}..{batches[-1]['last_seq']}" if batches else ""
        parts.append(
            f"Agent {a['agent_id']}: {len(a['evidence_seqs'])} evidence events among "
            f"{len(events)} stored events in {len(batches)} signed batches ({span}); "
            f"agent key SHA-256 fingerprint {fp}."
        )
    if not parts:
        return ""
    parts.append(f"Checked at export: {proof['checked_at_export']}")
    parts.append(
        "The JSON export carries the full proof (event bytes, hashes, batches, signatures, "
        "key and chain rule)."
    )
    return " ".join(parts)


def _event_line(s: dict[str, Any]) -> dict[str, Any]:
    ev = s["event"]
    payload: dict[str, Any] = next(
        (ev[k] for k in ("keyword", "url", "usb", "test_alert") if k in ev), {}
    )
    return {
        "time": _iso(s["observed_ms"]),  # the PC's clock
        # Set when the PC's clock was beyond the limit: its time by the collector's clock.
        "clock_skew_s": None if s.get("clock_skew_ms") is None else s["clock_skew_ms"] / 1000,
        "time_corrected": None if s.get("corrected_ms") is None else _iso(s["corrected_ms"]),
        "received": _iso(s["received_ms"]) if s.get("received_ms") else None,
        "source": s["source"],
        "category": s["category"],
        "severity": s["severity"],
        "terms": payload.get("terms", []),
        "context": payload.get("context", ""),
        "application": payload.get("application", ""),
        "window_title": payload.get("window_title", ""),
        "url": payload.get("url", ""),
        "device": " ".join(
            str(payload.get(k, "")) for k in ("vendor_id", "product_id", "product") if k in payload
        ),
        "agent_id": s["agent_id"],
        "seq": s["seq"],
        "hash": s["hash"],
        "screenshot_sha256": s.get("screenshot", ""),  # signed in the event; the file apart
    }


def record(
    inc: dict[str, Any],
    exported_by: Account,
    proof: dict[str, Any] | None = None,
    student: str | None = None,
) -> dict[str, Any]:
    """The CPOMS record; `proof` (from `chain_proof`) becomes its chain_proof_data; `student`
    is the pupil as the roster names them (default: the login name alone)."""
    verifications = [a for a in inc["actions"] if a["kind"] == "verification"]
    last = verifications[-1] if verifications else None
    return {
        "schema": SCHEMA,
        "incident_id": inc["id"],
        "student": inc["account"] if student is None else student,
        "group": inc["grp"],
        "date_time": _iso(inc["first_ms"]),
        "last_event": _iso(inc["last_ms"]),
        "categories": [c for c in inc["categories"].split(",") if c],
        "severity": inc["severity"],
        "description": inc["summary"],
        "escalation": inc["escalation"],
        "location": {
            "site": inc["site"],
            "room": inc["room"],
            "machine": inc["hostname"],
            "agent_id": inc["agent_id"],
        },
        "status": STATUSES.get(inc["status"], inc["status"]),
        "outcome": OUTCOMES.get(inc["outcome"], ""),
        "outcome_note": inc["outcome_note"],
        "cpoms_reference": inc.get("cpoms_ref") or "",
        "closed_by": inc["closed_by"],
        "evidence": [_event_line(s) for s in inc["evidence"]],
        "exempted_matches": inc["suppressed"],
        "actions": [
            {
                "at": _iso(a["at_ms"]),
                "by": a["by_user"],
                "kind": a["kind"],
                "text": a["text"],
                "due": a["due_date"].isoformat() if a["due_date"] else "",
                "done": _iso(a["done_ms"]),
            }
            for a in inc["actions"]
        ],
        "referrals": [
            {
                "outcome": OUTCOMES.get(r["outcome"], r["outcome"]),
                "state": r["state"],
                "requested_by": r["requested_by"],
                "confirmed_by": r["confirmed_by"] or "",
                "requested_at": _iso(r["requested_ms"]),
                "confirmed_at": _iso(r["confirmed_ms"]),
            }
            for r in inc["referrals"]
        ],
        "chain_proof": last["text"] if last else "not yet verified",
        "chain_proof_data": {
            "result": last["text"] if last else "not yet verified",
            "verified_by": last["by_user"] if last else "",
            "verified_at": _iso(last["at_ms"]) if last else "",
            **(proof or {"checked_at_export": "", "rule": CHAIN_RULE, "agents": []}),
        },
        "exported_by": exported_by.display_name,
        "exported_at": _iso(now_ms()),
    }


def render(
    inc: dict[str, Any],
    fmt: str,
    who: Account,
    con: duckdb.DuckDBPyConnection | None = None,
    checkpoint: anchors.Checkpoint | None = None,
    shots: export_screenshots.Included | None = None,
) -> tuple[bytes, str]:
    """The export in `fmt`; with `con` (the database), the chain proof's material is read and
    checked again now, so the record carries what a third party needs to re-verify it. With a
    checkpoint, the audit and record chains' signed heads go with it: a copy off the host that
    `safeguard-collector verify --head` holds the chains to later. With `shots` (the DSL asked
    for screenshots), the PDF embeds them and every format names them."""
    student = book.shown_one(con, inc["account"]) if con is not None else None
    rec = record(inc, who, chain_proof(con, inc) if con is not None else None, student)
    export_screenshots.annotate(rec, shots)
    if checkpoint is not None:
        rec["chain_checkpoint"] = checkpoint.to_json()
        rec["chain_checkpoint_line"] = checkpoint.line()
    if fmt == "json":
        return json.dumps(rec, indent=2).encode(), "application/json"
    if fmt == "csv":
        return _csv(rec).encode(), "text/csv"
    return pdf(rec, shots), "application/pdf"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """A cell a spreadsheet shows as text, never runs: one that begins like a formula gets a
    leading apostrophe (OWASP's rule for CSV injection). Pupils and PCs choose these strings."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(rec: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["field", "value"])
    for key, value in rec.items():
        if key == "chain_proof_data":  # the full proof is the JSON export's; a summary here
            value = proof_summary(value)
        if isinstance(value, list | dict):
            value = json.dumps(value)
        w.writerow([spreadsheet_safe(key), spreadsheet_safe(value)])
    return out.getvalue()


def pdf(rec: dict[str, Any], shots: export_screenshots.Included | None = None) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        title=f"Safeguarding incident {rec['incident_id']}",
    )
    st = getSampleStyleSheet()
    small = st["BodyText"].clone("small", fontSize=8, leading=10)

    def p(text: Any) -> Paragraph:
        return Paragraph(_esc(str(text)), small)

    loc = rec["location"]
    fields = [
        ("Pupil (account)", rec["student"] or "(no one logged in)"),
        ("Group", rec["group"]),
        ("Date and time", rec["date_time"]),
        ("Last event", rec["last_event"]),
        ("Categories", ", ".join(rec["categories"])),
        ("Severity (1-5)", rec["severity"]),
        ("What happened", rec["description"]),
        ("Why escalated", rec["escalation"] or "-"),
        ("Location", ", ".join(x for x in (loc["site"], loc["room"], loc["machine"]) if x)),
        ("Status", rec["status"]),
        ("Outcome", rec["outcome"] or "-"),
        ("Outcome note", rec["outcome_note"] or "-"),
        ("CPOMS reference", rec["cpoms_reference"] or "-"),
        ("Evidence check", rec["chain_proof"]),
        ("Chain proof", proof_summary(rec["chain_proof_data"]) or "-"),
        ("Exempted matches (suppressed)", rec["exempted_matches"]),
    ]
    story: list[Any] = [
        Paragraph(f"Safeguarding incident record #{rec['incident_id']}", st["Title"]),
        Paragraph(
            "CONFIDENTIAL - special category data about a child. For the school's "
            "safeguarding record (CPOMS).",
            small,
        ),
        Spacer(1, 4 * mm),
        _table([[p(k), p(v)] for k, v in fields], [45 * mm, 125 * mm]),
        Spacer(1, 4 * mm),
        Paragraph("Evidence", st["Heading2"]),
    ]
    ev_rows = [[p("Time"), p("Type"), p("Detail"), p("Hash")]]
    for e in rec["evidence"]:
        detail = "; ".join(
            x
            for x in (
                ", ".join(e["terms"]),
                e["context"] and f'"{e["context"]}"',
                e["url"],
                e["device"],
                e["application"],
                e["window_title"],
            )
            if x
        )
        ev_rows.append(
            [p(_pdf_time(e)), p(f"{e['source']} / {e['category']}"), p(detail),
             p(e["hash"][:16])]
        )  # fmt: skip
    story.append(_table(ev_rows, [34 * mm, 30 * mm, 78 * mm, 28 * mm], header=True))
    if shots is not None:
        story += export_screenshots.pdf_flowables(rec, shots, small)
    story += [Spacer(1, 4 * mm), Paragraph("Actions and follow-up", st["Heading2"])]
    act_rows = [[p("When"), p("By"), p("What"), p("Due / done")]]
    for a in rec["actions"]:
        act_rows.append([p(a["at"]), p(a["by"]), p(a["text"]), p(f"{a['due']} {a['done']}")])
    for r in rec["referrals"]:
        act_rows.append(
            [
                p(r["requested_at"]),
                p(r["requested_by"]),
                p(f"{r['outcome']} ({r['state']}; confirmed by {r['confirmed_by'] or '-'})"),
                p(r["confirmed_at"]),
            ]
        )
    story.append(_table(act_rows, [34 * mm, 28 * mm, 80 * mm, 28 * mm], header=True))
    story += [
        Spacer(1, 6 * mm),
        Paragraph(f"Exported by {_esc(rec['exported_by'])} at {rec['exported_at']}.", small),
    ]
    if rec.get("chain_checkpoint_line"):  # a copy of the chains' heads that leaves the host
        story.append(Paragraph(_esc(rec["chain_checkpoint_line"]), small))
    doc.build(story)
    return buf.getvalue()


def _table(rows: list[list[Any]], widths: list[float], header: bool = False) -> Table:
    t = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style: list[Any] = [
        ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")))
    else:
        style.append(("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f2f2f2")))
    t.setStyle(TableStyle(style))
    return t


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
