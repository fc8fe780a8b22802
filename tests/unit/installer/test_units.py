"""The generated units and autostart entry: their text, and systemd's own verdict on them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from installer import units
from tests.conftest import require_tool

pytestmark = pytest.mark.unit

EXE_C = PurePosixPath("/opt/safeguard/collector/current/bin/safeguard-collector")
EXE_A = PurePosixPath("/opt/safeguard/agent/current/bin/safeguard-agent")
DATA = PurePosixPath("/var/lib/safeguard/collector")
STATE = PurePosixPath("/var/lib/safeguard/agent")


def keys(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_collector_unit_is_sandboxed_and_runs_as_its_own_user() -> None:
    k = keys(units.collector_unit(EXE_C, DATA, "0.0.0.0:50051", "0.0.0.0:8443", "safeguard"))
    assert k["User"] == ["safeguard"] and k["Group"] == ["safeguard"]
    for key, value in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("ReadWritePaths", str(DATA)),
    ]:
        assert k[key] == [value], key
    assert k["ExecStart"] == [
        f"{EXE_C} serve --data {DATA} --listen 0.0.0.0:50051 --web 0.0.0.0:8443"
    ]
    assert k["CapabilityBoundingSet"] == [""]  # no capabilities at all on high ports


def test_a_privileged_port_gets_only_the_bind_capability() -> None:
    k = keys(units.collector_unit(EXE_C, DATA, "0.0.0.0:50051", "0.0.0.0:443", "safeguard"))
    assert k["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert k["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]


def test_agent_unit_and_helper_name_the_same_state() -> None:
    k = keys(units.agent_unit(EXE_A, STATE))
    assert k["ExecStart"] == [f"{EXE_A} run --state {STATE}"]
    assert k["ReadWritePaths"] == [str(STATE)] and k["ProtectSystem"] == ["strict"]
    assert k["Restart"] == ["always"] and k["ProtectHome"] == ["read-only"]
    d = keys(units.helper_desktop(EXE_A, STATE))
    assert d["Exec"] == [f"{EXE_A} {units.HELPER_COMMAND} --state {STATE}"]
    assert d["Type"] == ["Application"] and d["NoDisplay"] == ["true"]


@pytest.mark.parametrize("bad", ["/var/lib/my school", "/srv/a'b", "/srv/100%"])
def test_paths_a_command_line_cannot_hold_plainly_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot hold plainly"):
        units.agent_unit(EXE_A, PurePosixPath(bad))


def _verify_root(tmp_path: Path) -> Path:
    """A root holding systemd's own units (so targets resolve) and stub executables."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for exe in (EXE_C, EXE_A):
        path = root / str(exe).lstrip("/")
        path.parent.mkdir(parents=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    return root


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "127.0.0.1:443"])
def test_systemd_analyze_verify_accepts_both_units(tmp_path: Path, listen: str) -> None:
    tool = require_tool("systemd-analyze")
    root = _verify_root(tmp_path)
    unit_dir = root / "etc/systemd/system"
    (unit_dir / "safeguard-collector.service").write_text(
        units.collector_unit(EXE_C, DATA, listen, "0.0.0.0:8443", "safeguard")
    )
    (unit_dir / "safeguard-agent.service").write_text(units.agent_unit(EXE_A, STATE))
    result = subprocess.run(
        [
            tool,
            "verify",
            f"--root={root}",
            "safeguard-collector.service",
            "safeguard-agent.service",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # unknown keys are only warnings: none allowed
