"""The watchdog restarts a per-login helper over its memory limit: a real helper process (the
real agent.helper.Helper, in a real X session so the broker admits it) that leaks on its first
run, the real broker under the real supervisor, RSS read from /proc. Low limits and short
checks; every outcome is polled for."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.policy import ActivePolicy
from agent.selfwatch import Watchdog, WatchdogLimits
from agent.sensors import SensorContext
from agent.sensors.keyboard_broker import KeyboardBroker
from agent.sensors.registry import SensorSettings, SensorSpec
from agent.supervisor import Supervisor
from agent.usage import rss
from protos import events_pb2
from tests.e2e.agent.conftest import wait_until
from tests.e2e.agent.desktop import Desktop

pytestmark = pytest.mark.e2e

ACCOUNT = pwd.getpwuid(os.getuid()).pw_name
ROOT = Path(__file__).resolve().parents[3]
LIMIT_MB = 60
# The real helper with a key source that captures nothing. Its first run holds 120 MB (a
# leak); the run it re-executes into (same pid: sys.orig_argv) holds nothing. Each run is
# written down, so the test sees the restart happen in the same process.
LEAKY_HELPER = """
import os, sys
from pathlib import Path
from agent.helper import Helper
run = int(os.environ.get("LEAK_RUN", "0"))
os.environ["LEAK_RUN"] = str(run + 1)  # os.execv passes os.environ on
hog = b"x" * (120 << 20) if run == 0 else b""
with open(sys.argv[2], "a") as fh:
    fh.write(f"{run} {os.getpid()}\\n")
class NoKeys:
    def start(self, deliver): pass
    def stop(self): pass
    def alive(self): return True
Helper(Path(sys.argv[1]), keys=NoKeys, retry_s=0.2).run()
"""
# A helper that leaks and does not know the restart message (an old or a stuck one).
DEAF_HELPER = """
import socket, sys, time
from agent.helper_protocol import encode
hog = b"x" * (120 << 20)
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(encode(["hello", {"display": ":0", "session": "x11"}]))
time.sleep(120)
"""


class Watched:
    def __init__(self, tmp: Path, active: ActivePolicy) -> None:
        self.path = tmp / "run" / "keyboard.sock"
        self.emitted: list[events_pb2.Event] = []
        ctx = SensorContext(emit=self.emitted.append, policy=lambda: active, state_dir=tmp)
        self.broker = KeyboardBroker(self.path, desktops=lambda: {ACCOUNT}, grace_s=300,
                                     restart_grace_s=1.0)  # fmt: skip
        spec = SensorSpec("keyboard", lambda _s: self.broker)
        self.supervisor = Supervisor([spec], ctx, SensorSettings(tmp))
        self.supervisor.apply({"keyboard"})
        wait_until(self.path.exists, 10, "the socket")
        limits = WatchdogLimits(check_s=0.2, sustained=3, sensor_cpu_percent=1000,
                                helper_rss_mb=LIMIT_MB, service_rss_mb=100_000)  # fmt: skip
        self.watchdog = Watchdog(limits, self.supervisor, self.emitted.append)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watchdog.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def restarted(self) -> list[events_pb2.Event]:
        return [e for e in self.emitted
                if e.status.kind == events_pb2.AgentStatus.HELPER_RESTARTED]  # fmt: skip

    def helper_pids(self) -> list[int]:
        return [h.pid for h in self.supervisor.helpers()]

    def start(self, desktop: Desktop, script: str, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", script, str(self.path), *args],
                                env=desktop.env, cwd=ROOT)  # fmt: skip

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.supervisor.stop()


@pytest.fixture
def watched(tmp_path: Path, shipped: ActivePolicy) -> Iterator[Watched]:
    w = Watched(tmp_path, shipped)
    try:
        yield w
    finally:
        w.close()


def test_a_helper_over_its_memory_limit_restarts_itself_and_it_is_reported(
    watched: Watched, desktop: Desktop, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    helper = watched.start(desktop, LEAKY_HELPER, str(runs))
    try:
        wait_until(watched.restarted, 60, "a HELPER_RESTARTED status")
        event = watched.restarted()[0]
        assert event.account == ACCOUNT
        assert f"the keyboard helper of {ACCOUNT} (pid {helper.pid}) used" in event.status.detail
        assert f"(limit {LIMIT_MB} MB): asked to restart itself" in event.status.detail
        # The helper re-executed itself: the same process, a second run, connected again...
        wait_until(lambda: runs.read_text().splitlines() == [f"0 {helper.pid}",
                                                             f"1 {helper.pid}"],
                   120, "the helper's second run")  # fmt: skip
        wait_until(lambda: watched.helper_pids() == [helper.pid], 120, "the helper back")
        # ...with its memory back to normal, so it is not restarted again.
        used = rss(helper.pid)
        assert used is not None and used < LIMIT_MB << 20
        seen = watched.watchdog.checks
        wait_until(lambda: watched.watchdog.checks >= seen + 10, 30, "ten more checks")
        assert len(watched.restarted()) == 1 and helper.poll() is None
    finally:
        helper.kill()
        helper.wait()


def test_a_helper_that_does_not_restart_when_asked_is_stopped(
    watched: Watched, desktop: Desktop
) -> None:
    helper = watched.start(desktop, DEAF_HELPER)
    try:
        wait_until(watched.restarted, 60, "a HELPER_RESTARTED status")
        assert helper.wait(30) == -15  # SIGTERM, after the broker's 1 s of grace
        wait_until(lambda: watched.helper_pids() == [], 30, "the connection gone")
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
