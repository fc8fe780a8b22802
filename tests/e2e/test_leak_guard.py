"""The test run's own guard: a process a test leaves behind is killed and fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

FORGETFUL_TEST = """
import subprocess, sys
from pathlib import Path

def test_forgets_its_child():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path("child.pid").write_text(str(proc.pid))
"""


def run_pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.leaks", "-p", "no:cacheprovider",
         "-q", "test_sample.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_a_forgotten_child_is_killed_and_fails_the_run(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, FORGETFUL_TEST)
    pid = int((tmp_path / "child.pid").read_text())
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "left running by the tests, killed" in result.stderr
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_tidy_run_passes(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "def test_nothing_left():\n    pass\n")
    assert result.returncode == 0, result.stdout + result.stderr
