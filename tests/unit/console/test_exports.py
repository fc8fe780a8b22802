"""The CPOMS record renders: JSON, CSV and a PDF that reads back as text with pdftotext."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from collector import exports
from collector.accounts import Account
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
