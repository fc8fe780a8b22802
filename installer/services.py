"""Enabling, starting and stopping the services, and saying plainly when systemd is not there.

Enabling is done by writing the `multi-user.target.wants/` link that `systemctl enable` would
write, so it works the same under --root and on a machine where systemd is not PID 1 (a
container, a chroot). systemctl is called only on a real install where systemd is running
(`/run/systemd/system` exists, the test sd_booted(3) uses), and never under --root.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from installer.layout import Layout, unit_name
from installer.transaction import InstallError, Transaction

log = logging.getLogger(__name__)


def pid1() -> str:
    try:
        return Path("/proc/1/comm").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class Services:
    layout: Layout

    @property
    def live(self) -> bool:
        """Whether systemctl can act here: a real install on a machine booted with systemd."""
        return (
            not self.layout.is_throwaway
            and Path("/run/systemd/system").is_dir()
            and shutil.which("systemctl") is not None
        )

    def why_not_live(self) -> str:
        if self.layout.is_throwaway:
            return "installing under --root, where services are never started"
        if shutil.which("systemctl") is None:
            return "systemctl is not installed on this machine"
        return f"systemd is not running here (PID 1 is {pid1()!r}, e.g. a container)"

    def enable(self, tx: Transaction, role: str) -> None:
        target = f"../{unit_name(role)}"
        tx.symlink(self.layout.host(self.layout.wants(role)), target)

    def _systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120)
        log.info("systemctl args=%s rc=%d", " ".join(args), result.returncode)
        if check and result.returncode != 0:
            raise InstallError(
                f"systemctl {' '.join(args)} failed: {result.stderr.strip()}",
                fix=f"see `journalctl -u {args[-1]}` for why",
            )
        return result

    def reload(self) -> None:
        if self.live:
            self._systemctl("daemon-reload")

    def start(self, tx: Transaction, role: str) -> bool:
        """Start (or restart) the role's service; False when systemd cannot here."""
        if not self.live:
            return False
        self._systemctl("daemon-reload")
        self._systemctl("restart", unit_name(role))
        tx.on_undo(f"start {unit_name(role)}", lambda: self.stop(role))
        return True

    def stop(self, role: str) -> None:
        if self.live:
            self._systemctl("stop", unit_name(role), check=False)

    def is_active(self, role: str) -> str | None:
        """`active`, `failed`, `inactive`...; None when systemd cannot say (not running)."""
        if not self.live:
            return None
        return self._systemctl("is-active", unit_name(role), check=False).stdout.strip()
