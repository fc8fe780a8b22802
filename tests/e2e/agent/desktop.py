"""A real X desktop for keyboard tests and benchmarks: Xvfb, xterm windows, xdotool keys, and the
agent (`safeguard-agent run`) with its per-login helper (`keyboard-helper`) as real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO

BIN = Path(sys.executable).parent


class Desktop:
    """Xvfb on a free display (it picks the number: -displayfd), windows, typing."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(write)
        with os.fdopen(read) as fh:
            number = fh.readline().strip()
        if not number.isdigit():
            self.xvfb.kill()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"
        self.windows: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
        env.update(DISPLAY=self.display, XDG_SESSION_TYPE="x11")
        return env

    def xdotool(self, *args: str) -> str:
        out = subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True,
                             timeout=60, check=True)  # fmt: skip
        return out.stdout.strip()

    def window(self, title: str) -> None:
        """An xterm titled `title` whose input goes nowhere (cat to /dev/null), mapped."""
        self.windows[title] = subprocess.Popen(
            ["xterm", "-T", title, "-e", "sh", "-c", "cat > /dev/null"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # until it is viewable: focusing a window not yet mapped fails (BadMatch)
        self.xdotool("search", "--sync", "--onlyvisible", "--name", f"^{title}$")

    def focus(self, title: str) -> None:
        wid = self.xdotool("search", "--sync", "--name", f"^{title}$").split()[0]
        self.xdotool("windowfocus", "--sync", wid)

    def type(self, text: str, delay_ms: int = 4) -> None:
        self.xdotool("type", "--delay", str(delay_ms), text)

    def key(self, *names: str) -> None:
        self.xdotool("key", "--delay", "4", *names)

    def close(self) -> None:
        for proc in [*self.windows.values(), self.xvfb]:
            proc.terminate()
        for proc in [*self.windows.values(), self.xvfb]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


class AgentProcesses:
    """`safeguard-agent run` and one `keyboard-helper`, logs in files, a private TMPDIR."""

    def __init__(self, state: Path, desktop: Desktop, work: Path, heartbeat: float = 0.3,
                 log_level: str = "debug", bin_dir: Path = BIN) -> None:  # fmt: skip
        self.work = work
        self.socket = work / "run" / "keyboard.sock"
        self.tmpdir = work / "tmp"
        self.tmpdir.mkdir(parents=True)
        self.logs = work / "logs"
        self.logs.mkdir()
        env = {**os.environ, "TMPDIR": str(self.tmpdir), "PYTHONUNBUFFERED": "1"}
        self._files: list[IO[bytes]] = []
        self.agent = subprocess.Popen(
            [str(bin_dir / "safeguard-agent"), "run", "--state", str(state), "--heartbeat",
             str(heartbeat), "--keyboard-socket", str(self.socket), "--log-level", log_level],
            env=env, stdout=self._log("agent.out"), stderr=self._log("agent.err"),
        )  # fmt: skip
        self.helper = subprocess.Popen(
            [str(bin_dir / "safeguard-agent"), "keyboard-helper", "--socket", str(self.socket),
             "--log-level", log_level],
            env={**desktop.env, "TMPDIR": str(self.tmpdir), "PYTHONUNBUFFERED": "1"},
            stdout=self._log("helper.out"), stderr=self._log("helper.err"),
        )  # fmt: skip

    def _log(self, name: str) -> IO[bytes]:
        fh = (self.logs / name).open("wb")
        self._files.append(fh)
        return fh

    def pids(self) -> list[int]:
        return [p.pid for p in (self.agent, self.helper) if p.poll() is None]

    def stop(self) -> None:
        for proc in (self.helper, self.agent):
            if proc.poll() is None:
                proc.terminate()
        for proc in (self.helper, self.agent):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for fh in self._files:
            fh.close()


def have_x_tools() -> list[str]:
    return [t for t in ("Xvfb", "xdotool", "xterm") if shutil.which(t) is None]
