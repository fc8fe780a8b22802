"""The weekly report and governors' summary to send (issue 17 item 7), over real HTTP: each
page links its PDF; the PDFs carry the page's figures, are audited like the pages, and the
governors' names no one; print CSS leaves out navigation and buttons."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration
PUPILS = ("pupil.amy", "pupil.ben", "pupil.cara")


def _text(tmp_path: Path, body: bytes) -> str:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(body)
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return "\n".join(" ".join(line.split()) for line in out.splitlines())


def _audited(console: ConsoleHarness) -> list[tuple[str, str, str]]:
    sql = "SELECT action, target, actor FROM audit WHERE action LIKE '%_report'"
    return console.with_store(lambda s: s.con.execute(sql).fetchall())


def test_reports_download_as_pdfs_with_the_pages_figures(
    console: ConsoleHarness, tmp_path: Path
) -> None:
    require_tool("pdftotext")
    agent = Agent.enrol(console)
    for pupil in PUPILS:
        agent.ship(keyword("grooming", ["our secret"], account=pupil, context="keep our secret"))
    monday = dt.date.today() - dt.timedelta(days=dt.date.today().weekday())
    head = Client(console.url)
    head.login("head")
    status, page = head.get(f"/reports/weekly?week={monday.isoformat()}")
    assert status == 200 and f'href="/reports/weekly.pdf?week={monday.isoformat()}"' in page
    assert "Download PDF" in page and "3 (last week 0)" in page
    status, body, kind = head.get_bytes(f"/reports/weekly.pdf?week={monday.isoformat()}")
    assert status == 200 and kind == "application/pdf" and body.startswith(b"%PDF-")
    text = _text(tmp_path, body)
    assert f"week of {monday.strftime('%d %B %Y')}" in text
    assert "New candidates 3 (last week 0)" in text and "grooming 3 0 +3" in text
    for name in PUPILS:
        assert name not in text

    gov = Client(console.url)
    gov.login("gov")
    _, page = gov.get("/reports/governors")
    assert 'href="/reports/governors.pdf"' in page
    status, body, kind = gov.get_bytes("/reports/governors.pdf")
    assert status == 200 and kind == "application/pdf"
    text = _text(tmp_path, body)
    assert "Governors' safeguarding summary" in text and "grooming 3 0 +3" in text
    for secret in (*PUPILS, "our secret", agent.sim.agent_id, console.op("agents")[0]["hostname"]):
        assert secret not in text
    audited = _audited(console)
    assert ("export_report", "weekly", "head") in audited
    assert ("export_report", "governors", "gov") in audited


@pytest.mark.parametrize("path", ["/reports/weekly.pdf", "/reports/governors.pdf"])
def test_a_technician_gets_no_report_pdf(console: ConsoleHarness, path: str) -> None:
    Agent.enrol(console).ship(keyword("grooming", ["our secret"]))
    tech = Client(console.url)
    tech.login("tech")
    status, body = tech.get(path)
    assert status == 403 and "%PDF" not in body
    assert not [a for a in _audited(console) if a[0] == "export_report"]


def test_print_css_leaves_out_navigation_and_buttons(console: ConsoleHarness) -> None:
    status, css = Client(console.url).get("/static/console.css")
    assert status == 200
    printed = css.split("@media print", 1)[1]
    for hidden in ("header.top nav", "button", ".no-print"):
        assert hidden in printed.split("}", 1)[0]
