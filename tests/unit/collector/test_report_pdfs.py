"""The weekly report and governors' summary as PDFs (issue 17 item 7), read back as text with
pdftotext: the figures are there, and the governors' PDF names no pupil."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.reporting import report_pdfs, reports
from collector.reporting.school_days import Terms
from collector.storage.store import Store
from tests.conftest import require_tool

pytestmark = pytest.mark.unit
MONDAY = dt.date(2026, 11, 16)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db.duckdb")
    try:
        at = reports._ms(MONDAY) + 36_000_000
        week = 7 * reports.DAY_MS
        for category, n, when in [("grooming", 4, at), ("grooming", 1, at - week),
                                  ("self_harm", 3, at), ("bullying", 2, at - week)]:  # fmt: skip
            for _ in range(n):
                s.con.execute(
                    "INSERT INTO incidents (kind, category, categories, severity, base_severity, "
                    "agent_id, account, first_ms, last_ms, created_ms, updated_ms, summary) "
                    "VALUES ('detection', ?, ?, 4, 4, 'ag-1', 'pupil.amy', ?, ?, ?, ?, "
                    "'pupil.amy typed our secret')",
                    [category, category, when, when, when, when],
                )
        yield s
    finally:
        s.close()


def _text(tmp_path: Path, body: bytes) -> str:
    require_tool("pdftotext")
    assert body.startswith(b"%PDF-")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(body)
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_weekly_pdf_carries_the_figures_and_the_change(store: Store, tmp_path: Path) -> None:
    r = reports.weekly(store.con, MONDAY)
    text = _text(tmp_path, report_pdfs.weekly_pdf(r, "Checkpoint audit=12:abcd"))
    assert "Weekly safeguarding report: week of 16 November 2026" in text
    assert "7 (last week 3)" in text
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "grooming 4 1 +3" in lines and "self harm 3 0 +3" in lines
    assert "bullying 0 2 -2" in lines
    assert "Checkpoint audit=12:abcd" in text
    assert "pupil.amy" not in text and "our secret" not in text


def test_governors_pdf_has_counts_and_no_names(store: Store, tmp_path: Path) -> None:
    r = reports.governors(store.con, 12, MONDAY + dt.timedelta(days=2))
    text = _text(tmp_path, report_pdfs.governors_pdf(r))
    assert "Governors' safeguarding summary" in text
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "grooming 5 0 +5" in lines and "self harm 3 0 +3" in lines
    assert "bullying fewer than 3 0" in lines  # no change shown: it would give the 2 away
    assert "Monitoring coverage: 0 of 0 machines" in text
    for secret in ("pupil.amy", "our secret", "ag-1"):
        assert secret not in text


def test_governors_pdf_compares_terms_when_term_dates_are_set(
    store: Store, tmp_path: Path
) -> None:
    terms = Terms.parse(["2026-09-03:2026-10-23", "2026-11-02:2026-12-18"])
    r = reports.governors(store.con, 12, MONDAY + dt.timedelta(days=2), terms=terms)
    text = _text(tmp_path, report_pdfs.governors_pdf(r))
    assert "This term against last" in text
    assert "The first 17 days of this term (from 02 November 2026)" in " ".join(text.split())
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "grooming 5 0 +5" in lines and "self harm 3 0 +3" in lines
