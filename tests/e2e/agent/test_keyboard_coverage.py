"""Keyboard coverage: a desktop session whose helper is gone is reported, and so is its return;
a connection that never says hello cannot hold one of the account's helper slots.

The peers are real processes in a real X session (Xvfb), so the broker admits them as it
would a login's helper; the list of desktop sessions is given (no logind in a test box)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.policy import ActivePolicy
from agent.sensors import SensorContext
from agent.sensors.keyboard_broker import KeyboardBroker
from protos import events_pb2
from tests.e2e.agent.conftest import wait_until
from tests.e2e.agent.desktop import Desktop

pytestmark = pytest.mark.e2e

ACCOUNT = pwd.getpwuid(os.getuid()).pw_name  # the peers below run as this test's user
# A stand-in helper: says hello (or not, "silent"), then holds the connection until it is closed
# and prints what it was sent.
PEER = """
import socket, sys
from agent.helper_protocol import encode
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
if sys.argv[2] != "silent":
    s.sendall(encode(["hello", {"display": ":0", "session": "x11"}]))
s.settimeout(15)
got = b""
try:
    while chunk := s.recv(4096):
        got += chunk
    print("closed", got.decode(), flush=True)
except TimeoutError:
    print("open", flush=True)
"""


class Broker:
    def __init__(self, tmp: Path, active: ActivePolicy) -> None:
        self.path = tmp / "run" / "keyboard.sock"
        self.emitted: list[events_pb2.Event] = []
        self.ctx = SensorContext(emit=self.emitted.append, policy=lambda: active, state_dir=tmp)
        self.broker = KeyboardBroker(self.path, desktops=lambda: {ACCOUNT}, grace_s=30,
                                     hello_s=0.5)  # fmt: skip
        self.runner = threading.Thread(target=self.broker.run, args=(self.ctx,), daemon=True)
        self.runner.start()
        wait_until(self.path.exists, 10, "the socket")

    def close(self) -> None:
        self.broker.stop()
        self.runner.join(10)

    def kinds(self) -> list[str]:
        return [events_pb2.AgentStatus.Kind.Name(e.status.kind) for e in self.emitted]

    def peer(self, desktop: Desktop, mode: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", PEER, str(self.path), mode],
            env=desktop.env, stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[3],
        )  # fmt: skip


@pytest.fixture
def broker(tmp_path: Path, shipped: ActivePolicy) -> Iterator[Broker]:
    b = Broker(tmp_path, shipped)
    try:
        yield b
    finally:
        b.close()


def test_a_desktop_session_without_its_helper_is_reported_and_its_return_too(
    broker: Broker, desktop: Desktop
) -> None:
    kb, ctx = broker.broker, broker.ctx
    t0 = time.monotonic()
    kb.check_coverage(ctx, now=t0)
    kb.check_coverage(ctx, now=t0 + 29)
    assert broker.emitted == []  # a login's helper has the grace period to connect
    kb.check_coverage(ctx, now=t0 + 31)
    kb.check_coverage(ctx, now=t0 + 60)  # reported once, not at every check
    assert broker.kinds() == ["CAPTURE_MISSING"]
    missing = broker.emitted[0]
    assert missing.account == ACCOUNT and missing.severity == 3
    assert kb.status()[0] == "degraded"
    helper = broker.peer(desktop, "hello")
    try:
        wait_until(lambda: kb.status()[1].startswith(f"{ACCOUNT}:"), 15, "the helper admitted")
        kb.check_coverage(ctx, now=t0 + 61)
        assert broker.kinds() == ["CAPTURE_MISSING", "CAPTURE_RESTORED"]
        assert kb.status()[0] == "running"
    finally:
        helper.kill()
        helper.communicate()


def test_a_connection_that_never_says_hello_is_closed(broker: Broker, desktop: Desktop) -> None:
    silent = broker.peer(desktop, "silent")
    out: Any = silent.communicate(timeout=30)[0]
    assert out.startswith("closed") and '"capture"' in out  # answered, then let go


def test_desktop_sessions_are_read_from_logind_session_files(tmp_path: Path) -> None:
    from agent.sensors.keyboard_broker import desktop_accounts

    sessions = tmp_path / "sessions"
    sessions.mkdir()
    (sessions / "2").write_text("UID=1001\nUSER=amy\nSTATE=active\nTYPE=x11\nCLASS=user\n")
    (sessions / "3").write_text("UID=1002\nUSER=ben\nSTATE=online\nTYPE=tty\nCLASS=user\n")
    (sessions / "4").write_text("UID=115\nUSER=lightdm\nSTATE=online\nTYPE=x11\nCLASS=greeter\n")
    (sessions / "5").write_text("UID=1003\nUSER=cat\nSTATE=closing\nTYPE=wayland\nCLASS=user\n")
    (sessions / "2.ref").write_text("")
    assert desktop_accounts(sessions) == {"amy"}
