"""`status` and `doctor` run by a user who is not root: what only root may read is reported as
"run it again with sudo", never as a broken install to purge."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from installer import doctor, manifest, pyenv
from installer.checks import private
from installer.context import Context
from installer.layout import AUTOSTART, Layout
from installer.transaction import Transaction

pytestmark = pytest.mark.unit

STATE = "/var/lib/safeguard/agent"


def denied(path: Path) -> PermissionError:
    return PermissionError(13, "Permission denied", str(path))


@pytest.fixture
def agent_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed agent whose state folder (0700 root on a PC) this user may not look into."""
    layout = Layout(tmp_path)
    state = layout.host(STATE)
    state.mkdir(parents=True)
    (state / "identity.json").write_text(json.dumps({"agent_id": "a1", "collector": "c:1"}))
    (state / "run.lock").write_text("")
    state.chmod(0o700)  # the folder itself anyone may stat; what is in it, only root
    for target in (layout.unit("agent"), AUTOSTART):
        layout.host(target).parent.mkdir(parents=True, exist_ok=True)
        layout.host(target).write_text("")
    layout.host(layout.wants("agent")).parent.mkdir(parents=True)
    layout.host(layout.wants("agent")).symlink_to("../safeguard-agent.service")
    m = manifest.Manifest("agent", "0.1", {"collector": "c:1", "state": STATE}, "root", False, True)
    manifest.save(layout, Transaction(), m)
    monkeypatch.setattr(pyenv, "check", lambda env, role: "0.1")

    real_stat, real_open = Path.stat, os.open

    def stat(self: Path, *, follow_symlinks: bool = True) -> os.stat_result:
        if state in self.parents:
            raise denied(self)
        return real_stat(self, follow_symlinks=follow_symlinks)

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if state in Path(path).parents:
            raise denied(Path(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    monkeypatch.setattr(os, "open", open_)
    return tmp_path


def test_a_file_only_root_may_read_asks_for_sudo(agent_root: Path) -> None:
    check = private("private key", agent_root / STATE.lstrip("/") / "agent.key", 0o600, 0)
    assert (check.status, check.needs_root, check.failed) == ("unknown", True, False)
    assert "without root" in check.detail and "sudo" in check.fix


def test_status_without_root_says_run_it_with_sudo_not_purge(
    agent_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_tool(*args: object, **kwargs: object) -> None:
        raise AssertionError("safeguard-agent cannot read the state either: not worth running")

    monkeypatch.setattr(doctor, "run_tool", no_tool)
    ctx = Context(Layout(agent_root), None, None, False)
    assert doctor.doctor(ctx, network=False) == 1  # not a pass: the private files were not read
    out = capsys.readouterr().out
    assert "[  ok   ] state folder:" in out
    for name in ("private key", "identity", "enrolment"):
        assert f"[unknown] {name}: cannot read" in out, out
    assert "[unknown] running: cannot tell whether safeguard-agent.service runs without root" in out
    assert "uninstall" not in out and "purge" not in out
    assert "fix: run it again with sudo" in out
    assert "need root to read private files: run it again with sudo (`sudo safeguard-install " \
        "status`)" in out  # fmt: skip
    assert "all checks passed" not in out and "failed" not in out


def test_a_permission_error_from_the_agents_own_status_is_no_reason_to_reinstall(
    agent_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The identity looked readable, but `safeguard-agent status` met a file it may not open."""
    monkeypatch.setattr(doctor, "denied", lambda path: False)
    error = (
        "safeguard-agent: error: PermissionError: [Errno 13] Permission denied: "
        f"'{agent_root}{STATE}/outbox.sqlite'\n"
    )
    monkeypatch.setattr(
        doctor,
        "run_tool",
        lambda *args, **kwargs: subprocess.CompletedProcess(args, 1, "", error),
    )
    ctx = Context(Layout(agent_root), None, None, False)
    assert doctor.doctor(ctx, network=True) == 1
    out = capsys.readouterr().out
    assert "[unknown] enrolment: cannot read" in out and "fix: run it again with sudo" in out
    assert "purge" not in out and "sudo safeguard-install doctor" in out
