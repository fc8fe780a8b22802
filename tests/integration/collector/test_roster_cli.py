"""`safeguard-collector roster import|show` on a real data folder (no collector running): an
MIS export imported with a directory export, unmatched rows named with exit status 2, a file
it cannot use refused with a plain sentence and exit 1, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import CollectorProcess, run

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[2] / "data" / "roster"


def test_import_show_and_the_messages_an_operator_sees(tmp_path: Path) -> None:
    data = tmp_path / "collector"
    run("safeguard-collector", "init", "--data", data)
    got = run("safeguard-collector", "roster", "import", "--data", data, DATA / "sims.csv",
              "--accounts", DATA / "directory.csv", check=False)  # fmt: skip
    assert got.returncode == 2, got.stderr
    assert "3 rows: 2 added" in got.stdout
    assert "unmatched: line 4: Zoë Smith-Lee (no account with this name" in got.stdout
    shown = run("safeguard-collector", "roster", "show", "--data", data).stdout
    assert "2 pupils, 0 staff, 0 left" in shown and "1 unmatched" in shown
    got = run("safeguard-collector", "roster", "import", "--data", data, DATA / "sims.csv",
              "--naming", "{first}.{last}").stdout  # fmt: skip
    assert "3 added" in got and "2 not in this file marked left" in got

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"Pupil ID,Year\n1,5\n")
    huge = tmp_path / "huge.csv"  # past what the admin socket takes: said before sending
    huge.write_text("Forename,Surname,Notes\n" + "Amy,Lee,{}\n".format("x" * 80) * 60_000)
    for args, says in (
        ([bad, "--naming", "{first}.{last}"], "has no forename or surname column"),
        ([tmp_path / "missing.csv", "--naming", "{first}"], "cannot read the MIS export"),
        ([DATA / "sims.csv", "--naming", "{name}"], "naming rule '{name}' is not one we can"),
        ([huge, "--naming", "{first}"], "the most a roster import takes is"),
    ):
        got = run("safeguard-collector", "roster", "import", "--data", data, *args, check=False)
        assert got.returncode == 1 and says in got.stderr, got.stderr
        assert "Traceback" not in got.stderr


def test_through_a_running_collector_a_large_school_and_its_refusals(tmp_path: Path) -> None:
    """The admin socket carries the files (a 1,500-pupil school with its directory export is
    past the old 64 KiB request limit) and brings refusals back as the same sentences."""
    data = tmp_path / "collector"
    run("safeguard-collector", "init", "--data", data)
    serve = CollectorProcess(data)
    serve.start()
    try:
        mis, accounts = tmp_path / "mis.csv", tmp_path / "accounts.csv"
        rows = [(f"Pupilfirstname{i}", f"Longersurname{i}", 1 + i % 6) for i in range(1500)]
        mis.write_text("Legal Forename,Legal Surname,Year Group,Registration Group\n" + "".join(
            f"{f},{s},Year {y},{y}X\n" for f, s, y in rows))  # fmt: skip
        accounts.write_text("sAMAccountName,givenName,sn,displayName,employeeID\n" + "".join(
            f"{f}.{s},{f},{s},{f} {s},\n".lower() for f, s, _ in rows))  # fmt: skip
        assert mis.stat().st_size + accounts.stat().st_size > 64 * 1024
        got = run("safeguard-collector", "roster", "import", "--data", data, mis,
                  "--accounts", accounts).stdout  # fmt: skip
        assert "1500 rows: 1500 added" in got
        got = run("safeguard-collector", "roster", "import", "--data", data, DATA / "sims.csv",
                  "--naming", "{nope}", check=False)  # fmt: skip
        assert got.returncode == 1 and "naming rule '{nope}' is not one we can" in got.stderr
        assert "Traceback" not in got.stderr
    finally:
        assert serve.stop() == 0
