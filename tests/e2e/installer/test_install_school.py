"""A technician's afternoon, end to end with real processes: `safeguard-install collector` (a
real venv built by pip), the collector started from the installed layout (systemd is not PID 1
here, so as a plain process running the unit's own ExecStart), `safeguard-install agent`
enrolling against it, a test alert arriving with its chain verified, `doctor` green, a real
upgrade (a new venv) that keeps the chain going, and `uninstall --purge` leaving nothing."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.processes import BIN

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]  # the tree pip installs (--source)
DATA = "/var/lib/safeguard/collector"
STATE = "/var/lib/safeguard/agent"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def installer(root: Path, *args: str | Path, stdin: str | None = None, code: int = 0) -> str:
    result = subprocess.run(
        [str(BIN / "safeguard-install"), "--root", str(root), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == code, f"{args[0]}: {result.stdout}\n{result.stderr}"
    return result.stdout


def unit_command(root: Path, unit: str) -> list[str]:
    """The unit's ExecStart, with its target paths mapped under the throwaway root."""
    text = (root / "etc/systemd/system" / unit).read_text()
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    return [str(root) + a if a.startswith("/") else a for a in argv]


def verify_units(root: Path, *units: str) -> None:
    tool = require_tool("systemd-analyze")
    system = root / "usr/lib/systemd/system"
    shutil.copytree("/usr/lib/systemd/system", system, symlinks=True)  # targets to resolve
    try:
        result = subprocess.run(
            [tool, "verify", f"--root={root}", *units], capture_output=True, text=True, timeout=120
        )
    finally:
        shutil.rmtree(root / "usr")
    assert result.returncode == 0 and result.stderr == "", result.stderr


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[str]:
        with log.open("w") as err:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> None:
        proc.terminate()
        proc.wait(60)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    p = Processes()
    yield p
    for proc in p.procs:
        if proc.poll() is None:
            p.stop(proc)


def wait_for_event(collector_exe: Path, data: Path, event_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        out = subprocess.run(
            [collector_exe, "events", "--data", data, "--format", "json", "--limit", "1000"],
            capture_output=True,
            text=True,
        ).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        found = [r for r in rows if r["event"].get("event_id") == event_id]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"event {event_id} never reached the collector")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short folder: the collector's admin socket path must fit AF_UNIX's 108 bytes, and
    pytest's tmp_path plus /var/lib/safeguard/collector/admin.sock does not."""
    path = Path(tempfile.mkdtemp(prefix="sgi-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_school_from_nothing_with_safeguard_install_only(
    short_tmp: Path, processes: Processes
) -> None:
    tmp_path = short_tmp
    school, pc = tmp_path / "school", tmp_path / "pc"
    port, web = free_port(), free_port()
    out = installer(
        school,
        "collector",
        "--data",
        DATA,
        "--listen",
        f"127.0.0.1:{port}",
        "--web",
        f"127.0.0.1:{web}",
        "--room-uses",
        "5",
        "--no-start",
        "--source",
        REPO,
    )
    line = next(x for x in out.splitlines() if x.startswith("echo sgt_"))
    token = line.split()[1]
    assert f"--collector 127.0.0.1:{port} --ca ca.pem --token-file -" in line
    verify_units(school, "safeguard-collector.service")

    argv = unit_command(school, "safeguard-collector.service")
    collector = processes.start(argv, tmp_path / "collector.log")
    assert collector.stdout is not None
    ready = collector.stdout.readline()
    assert "collector ready" in ready, (tmp_path / "collector.log").read_text()[-2000:]
    assert "console:" in collector.stdout.readline()

    ca = school / "etc/safeguard/ca.pem"
    out = installer(
        pc,
        "agent",
        "--collector",
        f"127.0.0.1:{port}",
        "--ca",
        ca,
        "--token-file",
        "-",
        "--no-start",
        "--source",
        REPO,
        stdin=token + "\n",
    )
    assert "Safeguard agent" in out
    python = pc / "opt/safeguard/agent/current/bin/python"
    no_duckdb = subprocess.run([python, "-c", "import duckdb"], capture_output=True, text=True)
    assert no_duckdb.returncode != 0 and "No module named 'duckdb'" in no_duckdb.stderr
    verify_units(pc, "safeguard-agent.service")

    agent_argv = unit_command(pc, "safeguard-agent.service")
    agent = processes.start(agent_argv, tmp_path / "agent.log")
    exe = Path(agent_argv[0])
    state = pc / STATE.lstrip("/")
    collector_exe, data = Path(argv[0]), school / DATA.lstrip("/")
    first = subprocess.run(
        [exe, "test-alert", "--state", state, "--note", "installed"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert wait_for_event(collector_exe, data, first)["chain"] == "verified"

    for root in (school, pc):
        report = subprocess.run(
            [str(BIN / "safeguard-install"), "--root", str(root), "doctor"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert report.returncode == 0, report.stdout + report.stderr
        assert "all checks passed" in report.stdout

    # a real upgrade: a new venv, the same identity, outbox and chain
    before = (state / "identity.json").read_bytes(), (state / "agent.key").read_bytes()
    out = installer(pc, "upgrade", "--no-start", "--source", REPO)
    assert "kept as it was" in out
    assert (pc / "opt/safeguard/agent/current").readlink() == Path("venv-2")
    assert not (pc / "opt/safeguard/agent/venv-1").exists()
    processes.stop(agent)
    agent = processes.start(unit_command(pc, "safeguard-agent.service"), tmp_path / "agent2.log")
    assert ((state / "identity.json").read_bytes(), (state / "agent.key").read_bytes()) == before
    second = subprocess.run(
        [exe, "test-alert", "--state", state, "--note", "upgraded"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    row = wait_for_event(collector_exe, data, second)
    assert row["chain"] == "verified"
    first_row = wait_for_event(collector_exe, data, first)
    assert int(str(row["seq"])) > int(str(first_row["seq"]))

    processes.stop(agent)
    processes.stop(collector)
    installer(pc, "uninstall", "--yes", "--purge")
    installer(school, "uninstall", "--yes", "--purge")
    assert not pc.exists() and not school.exists()  # every folder the installs made is gone
