"""Where the service takes a picture from is the helper's own session: DISPLAY and XAUTHORITY
from its process environment, a cookie file only if the helper's user owns it, and never a
display on another host."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.sensors.keyboard_broker import session_screen
from agent.sensors.screen import CaptureError
from agent.sensors.screen_x11 import capture_window

pytestmark = pytest.mark.unit


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    cookie = tmp_path / "cookie"
    cookie.write_bytes(b"")
    env = {**os.environ, "DISPLAY": ":42", "XAUTHORITY": str(cookie)}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE, env=env)  # fmt: skip
    try:
        yield proc, cookie
    finally:
        proc.communicate()


def test_the_display_and_cookie_come_from_the_helpers_environment(
    peer: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, cookie = peer
    screen = session_screen(proc.pid, ":7")  # what its hello said counts for less
    assert screen.display == ":42" and screen.xauthority == str(cookie)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_cookie_file_another_user_owns_is_not_used(
    peer: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, cookie = peer
    os.chown(cookie, 65534, 65534)
    assert session_screen(proc.pid, "").xauthority == ""


@pytest.mark.parametrize("name", ["evil.example:0", "10.0.0.9:0.0"])
def test_a_display_on_another_host_is_refused(name: str) -> None:
    with pytest.raises(CaptureError, match="not on this PC"):
        capture_window(name, 0x400001, 640)


def test_the_service_captures_in_a_child_that_says_why_it_failed() -> None:
    # No X server answers on this display: the child's sentence reaches the service as a
    # CaptureError (the worker counts it), not an exit status.
    from agent.sensors.screen import capture_window as in_service

    with pytest.raises(CaptureError, match="cannot connect to X display ':4791'"):
        in_service(":4791", 0x400001, 640)


def test_a_child_that_hangs_is_killed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agent.sensors import screen

    # The child made to hang as on a wedged X server: an "interpreter" that only sleeps.
    hangs = tmp_path / "python"
    hangs.write_text("#!/bin/sh\nexec sleep 600\n")
    hangs.chmod(0o755)
    monkeypatch.setattr(screen.sys, "executable", str(hangs))
    monkeypatch.setattr(screen, "CHILD_TIMEOUT_S", 0.5)
    with pytest.raises(CaptureError, match=r"longer than 0\.5 s"):
        screen.capture_window(":0", 0x400001, 640)
