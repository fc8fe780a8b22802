"""The per-login keyboard helper stays small: what its command imports, and the two stand-ins
that keep heavy modules out of it (the version lookup, the process name)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import psutil
import pytest

import agent
from agent.sensors.keyboard_x11 import process_name

# Heavy for a process that runs in every desktop session, and not needed there.
# pynput: on X11 the helper reads the RECORD stream itself (agent/sensors/keyboard_x11_record.py).
# dataclasses: with inspect, ast, dis and tokenize, 1 MB of the helper's 20 (named tuples do).
KEPT_OUT = ("cryptography", "grpc", "google.protobuf", "psutil", "sqlite3", "importlib.metadata",
            "rules", "protos", "email", "pynput", "dataclasses", "inspect", "ast")  # fmt: skip


def test_the_helper_command_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from agent.cli import _parser\n"
        "import agent.helper, agent.helper_protocol, agent.sensors.keyboard_x11_record\n"
        "import agent.notice_x11\n"
        "_parser().parse_args(['keyboard-helper'])\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    heavy = [m for m in loaded if any(m == k or m.startswith(k + ".") for k in KEPT_OUT)]
    assert heavy == []


def test_version_matches_importlib_metadata() -> None:
    try:
        expected = metadata.version("safeguard-monitor")
    except metadata.PackageNotFoundError:
        pytest.skip("not installed")
    assert agent.__version__ == expected


def test_process_name_matches_psutil() -> None:
    for pid in psutil.pids():
        try:
            expected: str | None = psutil.Process(pid).name()
        except psutil.Error:
            expected = None
        got = process_name(pid)
        if got is None and expected is not None and not Path(f"/proc/{pid}").exists():
            continue  # exited between the two reads
        assert got == expected, pid
    assert process_name(0) is None
    assert process_name(-1) is None
    assert process_name(2**22 + 12345) is None


def test_process_name_gives_the_long_name(tmp_path: Path) -> None:
    """A comm cut at 15 characters is completed from argv[0], as psutil does."""
    exe = tmp_path / "a-rather-long-program-name"
    exe.symlink_to(shutil.which("sleep") or "/bin/sleep")
    proc = subprocess.Popen([str(exe), "30"])
    try:
        deadline = time.monotonic() + 5
        while process_name(proc.pid) != exe.name and time.monotonic() < deadline:
            time.sleep(0.02)  # until the exec has happened
        assert process_name(proc.pid) == psutil.Process(proc.pid).name() == exe.name
    finally:
        proc.kill()
        proc.wait()
