"""Real collector and agent processes for end-to-end tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run(*args: str | Path, check: bool = True, stdin: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a console script to completion."""
    result = subprocess.run(
        [str(BIN / str(args[0])), *map(str, args[1:])],
        capture_output=True, text=True, input=stdin, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
    return result


class CollectorProcess:
    """`safeguard-collector serve` as its own process, restartable on the same port."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "safeguard-collector"), "serve", "--data", str(self.data),
             "--listen", f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not match:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"collector did not start: {line!r} {err}")
        self.port = int(match.group(1))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
        self._close()

    def stop(self) -> int:
        """SIGTERM, as systemd would; returns the exit code."""
        if self.proc is None:
            return 0
        self.proc.terminate()
        code = self.proc.wait(60)
        self._close()
        return code

    def _close(self) -> None:
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        self.proc = None
