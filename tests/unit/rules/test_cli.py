"""``python -m rules.cli`` as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "rules.cli", *args]
    # (generous: `check` loads and compiles the shipped lists, 25 s of CPU, several times
    # that beside other tests; only a hung command waits it out)
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=ROOT,
                          timeout=600, check=False)  # fmt: skip


def test_check_prints_one_json_line_per_alert() -> None:
    res = run("check", stdin="hi\nit's 0ur l1ttle s3cret, and i want to k.i.l.l myself\n")
    assert res.returncode == 0, res.stderr
    alerts = [json.loads(line) for line in res.stdout.splitlines()]
    assert [a["category"] for a in alerts] == ["grooming", "suicide"]
    assert alerts[0]["terms"] == ["our little secret"]
    assert alerts[1]["context"].endswith("k.i.l.l myself")
    assert set(alerts[0]) >= {"category", "terms", "score", "start", "end", "context"}


def test_check_innocent_prints_nothing() -> None:
    res = run("check", "--profile", "ks1", stdin="Scunthorpe, Middlesex, the therapist")
    assert (res.returncode, res.stdout) == (0, "")


def test_check_url() -> None:
    res = run("check-url", "https://www.bing.com/search?q=send+nudes", "https://bbc.co.uk")
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()
    assert json.loads(line)["engine"] == "bing"


def test_validate_ok_and_bad(tmp_path: Path) -> None:
    res = run("validate")
    assert res.returncode == 0 and json.loads(res.stdout)["ok"] is True
    bad = run("validate", "--rules", str(tmp_path))
    assert bad.returncode == 1 and "policy.toml: missing" in bad.stderr


def test_unknown_profile_and_usage() -> None:
    res = run("check", "--profile", "year13", stdin="x")
    assert res.returncode == 1 and "no profile 'year13'" in res.stderr
    assert run("frobnicate").returncode == 2


def test_import_e2guardian(tmp_path: Path) -> None:
    src = tmp_path / "weighted"
    src.write_text("< porn ><40>\n<a>,<b><5>\nbad line\n")
    out = tmp_path / "out.toml"
    res = run("import-e2guardian", str(src), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["entries"] == 2
    assert "weighted:3" in res.stderr and "[[combo]]" in out.read_text()
    missing = run("import-e2guardian", str(tmp_path / "nope"), "--out", str(out))
    assert missing.returncode == 1 and "no such list file" in missing.stderr
