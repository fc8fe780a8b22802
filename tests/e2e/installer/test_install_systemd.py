"""The installed services under a real systemd: `safeguard-install collector` and `agent` run as
on a school's machines (no --root: useradd, systemctl, /etc, /opt), inside a box where systemd is
PID 1 of its own namespaces (systemd_box.py), since it is not PID 1 on this machine. systemctl
starts the units for real; the test checks they run, that their sandbox holds, that
`safeguard-install test-alert` (from root's PATH) sees a test alert travel from the agent's
service to the collector's, and that uninstall stops them."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, require_tool
from tests.e2e.installer.systemd_box import SYSTEMD, TOOLS, SystemdBox, systemd_box

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]  # the tree pip installs, seen at the same path inside
# The system Python, as docs/installer.md says to run the installer: the services' accounts must
# be able to run the venv's interpreter, and this test runner's may be under /root.
PYTHON = "/usr/bin/python3"
DATA = "/var/lib/safeguard/collector"
STATE = "/var/lib/safeguard/agent"
COLLECTOR, AGENT = "safeguard-collector.service", "safeguard-agent.service"
COLLECTOR_EXE = "/opt/safeguard/collector/current/bin/safeguard-collector"
KEYBOARD_SOCKET = "/run/safeguard-agent/keyboard.sock"  # the agent listens: it is up
# root's PATH under sudo (Debian's secure_path), where the installer puts safeguard-install
ROOT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COMMAND = "/usr/local/sbin/safeguard-install"
DEADLINE_S = 60


@pytest.fixture
def box() -> Iterator[SystemdBox]:
    require(os.geteuid() == 0, "booting a systemd in its own namespaces needs root")
    for tool in TOOLS:
        require_tool(tool)
    require(SYSTEMD.exists(), f"{SYSTEMD} is not installed (apt package systemd)")
    require(Path(PYTHON).exists(), f"{PYTHON} is not installed (apt package python3-venv)")
    base = Path(tempfile.mkdtemp(prefix="sgbox-", dir="/tmp"))
    try:
        with systemd_box(base, shown=(REPO,)) as booted:
            yield booted
    finally:
        shutil.rmtree(base, ignore_errors=True)  # only if booting failed before the mount


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install(box: SystemdBox, *args: str, stdin: str | None = None) -> str:
    return box.run(PYTHON, "-m", "installer", *args, stdin=stdin, cwd=REPO, timeout=900).stdout


def wait_until(what: str, box: SystemdBox, unit: str, ready: Callable[[], bool]) -> None:
    """Poll `ready()` until true; a unit that fails or restarts meanwhile ends the wait, with
    its journal."""
    deadline = time.monotonic() + DEADLINE_S
    while not ready():
        state = box.show(unit, "ActiveState", "SubState", "NRestarts")
        if state.get("ActiveState") == "failed" or state.get("NRestarts", "0") != "0":
            raise AssertionError(f"{unit} {state} while waiting for {what}:\n{box.journal(unit)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {DEADLINE_S}s:\n{box.journal(unit)}")
        time.sleep(0.2)


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def assert_running(box: SystemdBox, unit: str) -> dict[str, str]:
    """`active (running)`, enabled, never restarted; returns its sandbox settings."""
    state = box.show(
        unit,
        "ActiveState",
        "SubState",
        "NRestarts",
        "UnitFileState",
        "MainPID",
        "User",
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "ReadWritePaths",
    )
    assert (state["ActiveState"], state["SubState"], state["NRestarts"]) == (
        "active",
        "running",
        "0",
    ), f"{state}\n{box.journal(unit)}"
    assert state["UnitFileState"] == "enabled"  # the installer's own multi-user.target.wants link
    assert "Active: active (running)" in box.systemctl("status", "--no-pager", unit)
    return state


def assert_sandboxed(box: SystemdBox, state: dict[str, str], writable: str) -> None:
    """What the service's process really gets: no new privileges, a seccomp filter, and a
    filesystem where only its own folder takes writes, even for root (read-only mounts)."""
    pid = state["MainPID"]
    assert state["NoNewPrivileges"] == "yes" and state["ProtectSystem"] == "strict"
    assert state["PrivateTmp"] == "yes" and state["ReadWritePaths"] == writable
    status = box.run("cat", f"/proc/{pid}/status").stdout
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    assert re.search(r"^Seccomp:\s+2$", status, re.M), status  # filter mode

    def write(path: str) -> str:
        """Try to create a file in the service's own mount namespace, as root."""
        probe = f"{path}/.sandbox-probe"
        result = box.run(
            "nsenter", f"--target={pid}", "--mount", "--", "sh", "-c",
            f"touch {probe} && rm {probe}",
            check=False,
        )  # fmt: skip
        return "ok" if result.returncode == 0 else result.stderr

    assert write(writable) == "ok"
    for path in ("/etc", "/opt/safeguard", "/usr/local", "/var/lib", "/root"):
        assert "Read-only file system" in write(path), path
    assert write("/tmp") == "ok"  # PrivateTmp: its own, not the machine's
    box.run("touch", "/tmp/machine-wide")
    seen = box.run("nsenter", f"--target={pid}", "--mount", "--", "ls", "-A", "/tmp").stdout
    assert "machine-wide" not in seen, seen


def event_row(box: SystemdBox, event_id: str) -> dict[str, Any] | None:
    """The collector's row for an event, read with `safeguard-collector events` in the box."""
    out = box.run(COLLECTOR_EXE, "events", "--data", DATA, "--format", "json", "--limit", "1000")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return next((r for r in rows if r["event"].get("event_id") == event_id), None)


def test_the_units_run_sandboxed_under_a_real_systemd(box: SystemdBox) -> None:
    port, web = free_port(), free_port()  # the box shares this machine's network
    out = install(
        box,
        "collector",
        "--data",
        DATA,
        "--listen",
        f"127.0.0.1:{port}",
        "--web",
        f"127.0.0.1:{web}",
        "--room-uses",
        "2",
        "--source",
        str(REPO),
    )
    assert f"{COLLECTOR}: started, running as safeguard" in out, out
    token = next(x for x in out.splitlines() if x.startswith("echo sgt_")).split()[1]
    wait_until("gRPC port", box, COLLECTOR, lambda: accepts(port))
    wait_until("console port", box, COLLECTOR, lambda: accepts(web))
    collector = assert_running(box, COLLECTOR)
    assert collector["User"] == "safeguard" and collector["ProtectHome"] == "yes"
    assert_sandboxed(box, collector, DATA)
    caps = box.run("cat", f"/proc/{collector['MainPID']}/status").stdout
    assert re.search(r"^CapEff:\s+0+$", caps, re.M), caps  # no capability at all

    out = install(
        box,
        "agent",
        "--collector",
        f"127.0.0.1:{port}",
        "--ca",
        "/etc/safeguard/ca.pem",
        "--token-file",
        "-",
        "--source",
        str(REPO),
        stdin=token + "\n",
    )
    assert f"{AGENT}: started" in out, out
    wait_until(
        "the keyboard socket in its RuntimeDirectory",
        box,
        AGENT,
        lambda: box.run("test", "-S", KEYBOARD_SOCKET, check=False).returncode == 0,
    )
    agent = assert_running(box, AGENT)
    assert agent["User"] in ("", "root") and agent["ProtectHome"] == "read-only"
    assert_sandboxed(box, agent, STATE)

    # the technician's check, by name from root's PATH: the link the first install made
    linked = box.run("readlink", COMMAND).stdout.strip()
    assert linked == "../../../opt/safeguard/collector/current/bin/safeguard-install", linked
    checked = box.run("env", ROOT_PATH, "safeguard-install", "test-alert", "--note", "systemd")
    assert "ok: the collector at 127.0.0.1:" in checked.stdout, checked.stdout
    alert = checked.stdout.split("test alert ")[1].split()[0]
    wait_until("the test alert at the collector", box, AGENT, lambda: bool(event_row(box, alert)))
    row = event_row(box, alert)
    assert row is not None and row["chain"] == "verified", row
    for unit in (COLLECTOR, AGENT):
        assert_running(box, unit)  # still: neither restarted while shipping

    report = box.run(PYTHON, "-m", "installer", "doctor", cwd=REPO, check=False, timeout=300)
    assert report.returncode == 0 and "all checks passed" in report.stdout, (
        report.stdout + report.stderr
    )

    install(box, "uninstall", "agent", "collector", "--yes", "--purge")
    for unit in (COLLECTOR, AGENT):
        state = box.show(unit, "ActiveState", "LoadState")
        assert state == {"ActiveState": "inactive", "LoadState": "not-found"}, state
    left = box.run("sh", "-c", "cat /proc/[0-9]*/cmdline", check=False).stdout
    assert "/opt/safeguard" not in left, left  # no process of either service is left
    assert box.run("test", "-e", "/opt/safeguard", check=False).returncode == 1
    assert box.run("test", "-L", COMMAND, check=False).returncode == 1
    assert box.run("getent", "passwd", "safeguard", check=False).returncode == 2
