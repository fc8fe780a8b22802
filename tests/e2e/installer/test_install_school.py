"""A technician's afternoon, end to end with real processes: `safeguard-install collector` (a
real venv built by pip), the collector started from the installed layout (systemd is not PID 1
here, so as a plain process running the unit's own ExecStart), `safeguard-install agent`
enrolling against it, `safeguard-install test-alert` (through the link the install put on
root's PATH) acknowledged and the alert stored with its chain verified, `doctor` green, a real
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


def send_test_alert(pc: Path, note: str, agent_log: Path) -> str:
    """`safeguard-install test-alert` as a technician runs it on the PC: through the link the
    install put on root's PATH. Returns the alert's event id, once the collector has it.

    First, the agent this test started must be up (holding its run.lock), as systemd would
    have it after the install: a loaded machine can take more than the command's 10 s grace
    for an agent that is not running."""
    exe = pc / "opt/safeguard/agent/current/bin/safeguard-agent"
    status = [exe, "status", "--state", pc / STATE.lstrip("/")]
    deadline = time.monotonic() + 60
    while "running:      yes" not in subprocess.run(status, capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, f"the agent did not start:\n{agent_log.read_text()}"
        time.sleep(0.2)
    result = subprocess.run(
        [pc / "usr/local/sbin/safeguard-install", "--root", pc, "test-alert", "--note", note],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr + agent_log.read_text()[-3000:]
    assert "ok: the collector at 127.0.0.1:" in result.stdout, result.stdout
    return result.stdout.split("test alert ")[1].split()[0]


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
    made = [p for p in reversed(system.parents) if p.is_relative_to(root) and not p.exists()]
    shutil.copytree("/usr/lib/systemd/system", system, symlinks=True)  # targets to resolve
    try:
        result = subprocess.run(
            [tool, "verify", f"--root={root}", *units], capture_output=True, text=True, timeout=120
        )
    finally:  # only what was copied: the install's own usr/local/sbin link stays
        shutil.rmtree(system)
        for folder in reversed(made):
            folder.rmdir()
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
    assert line.endswith(
        f"sudo /usr/bin/python3 -m installer agent --collector 127.0.0.1:{port} --ca ca.pem "
        "--token-file -"
    )
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
    state = pc / STATE.lstrip("/")
    collector_exe, data = Path(argv[0]), school / DATA.lstrip("/")
    first = send_test_alert(pc, "installed", tmp_path / "agent.log")
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
    # the link follows `current` to the new venv
    second = send_test_alert(pc, "upgraded", tmp_path / "agent2.log")
    row = wait_for_event(collector_exe, data, second)
    assert row["chain"] == "verified"
    first_row = wait_for_event(collector_exe, data, first)
    assert int(str(row["seq"])) > int(str(first_row["seq"]))

    processes.stop(agent)
    processes.stop(collector)
    # through the link: the installer runs from the venv it removes (its code is loaded; the
    # standard library it uses is the system's)
    gone = subprocess.run(
        [pc / "usr/local/sbin/safeguard-install", "--root", pc, "uninstall", "--yes", "--purge"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gone.returncode == 0 and "removed the agent" in gone.stdout, gone.stdout + gone.stderr
    installer(school, "uninstall", "--yes", "--purge")
    assert not pc.exists() and not school.exists()  # every folder the installs made is gone
