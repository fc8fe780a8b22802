"""What every command is given: where to install, how, and how to run the installed tools."""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from installer.layout import Layout
from installer.services import Services
from installer.transaction import InstallError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    layout: Layout
    python_env: Path | None  # reuse this venv instead of building one (tests, air-gapped PCs)
    source: str | None  # a source tree or wheel for pip; default: the tree we run from
    no_start: bool  # write everything, start nothing

    @property
    def services(self) -> Services:
        return Services(self.layout)

    def require_root(self) -> None:
        """A real install changes /etc, /opt and accounts: only root may. --root needs no root."""
        if not self.layout.is_throwaway and os.geteuid() != 0:
            raise InstallError(
                "safeguard-install must run as root to install services; nothing changed",
                fix="run it again with sudo",
            )


def run_tool(
    env: Path, name: str, *args: str | Path, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run an installed console script (safeguard-agent, safeguard-collector) from `env`."""
    argv = [str(env / "bin" / name), *map(str, args)]
    log.info("tool.run name=%s command=%s", name, args[0] if args else "")
    try:
        return subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
        )
    except subprocess.TimeoutExpired:
        what = f"{name} {args[0]}" if args else name
        raise InstallError(f"{what} did not finish in {timeout:.0f}s") from None
    except OSError as exc:
        raise InstallError(f"cannot run {argv[0]}: {exc.strerror}") from None


def run_ok(env: Path, name: str, *args: str | Path, stdin: str | None = None) -> str:
    """Like run_tool, but a non-zero exit is an InstallError carrying the tool's own message."""
    result = run_tool(env, name, *args, stdin=stdin)
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        raise InstallError(f"{name} {args[0]} failed: {message[0]}")
    return result.stdout
