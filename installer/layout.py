"""Where an installation puts things, on the target system and (with --root) on this disk.

Every path the installer writes is a *target* path, as the installed system sees it
(`/opt/safeguard/agent/current`), and is written at `Layout.host(target)`: the same path under
`--root DIR` in tests, or the path itself on a real install. Units and autostart files name
target paths, so a tree made under --root is what a real machine would hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROLES = ("collector", "agent")
OPT = PurePosixPath("/opt/safeguard")
CONFIG = PurePosixPath("/etc/safeguard")
UNIT_DIR = PurePosixPath("/etc/systemd/system")
WANTS_DIR = UNIT_DIR / "multi-user.target.wants"
AUTOSTART = PurePosixPath("/etc/xdg/autostart/safeguard-keyboard-helper.desktop")
DEFAULT_AGENT_STATE = PurePosixPath("/var/lib/safeguard/agent")
# safeguard-install on root's PATH (sudo's secure_path) once a role is installed: a symlink to
# a role's `current/bin/safeguard-install`. /usr/local/sbin, as it is for the administrator only.
COMMAND_LINK = PurePosixPath("/usr/local/sbin/safeguard-install")
SERVICE_ACCOUNT = "safeguard"  # the collector's; the agent runs as root (see docs/installer.md)


@dataclass(frozen=True)
class Layout:
    """Target paths, and where they live on this disk (under `root`, "/" for a real install)."""

    root: Path

    @property
    def is_throwaway(self) -> bool:
        """True under --root: no systemctl, no useradd, accounts written into ROOT/etc."""
        return self.root != Path("/")

    def host(self, target: PurePosixPath | str) -> Path:
        target = PurePosixPath(target)
        if not target.is_absolute():
            raise ValueError(f"target path {target} is not absolute")
        return self.root.joinpath(*target.parts[1:]) if self.is_throwaway else Path(target)

    def target(self, host: Path) -> PurePosixPath:
        """The target path of a path on this disk (the inverse of `host`)."""
        if not self.is_throwaway:
            return PurePosixPath(host)
        return PurePosixPath("/") / host.relative_to(self.root).as_posix()

    def env_dir(self, role: str) -> PurePosixPath:
        return OPT / role

    def current(self, role: str) -> PurePosixPath:
        """A symlink to the virtual environment in use; units run `current/bin/...`."""
        return OPT / role / "current"

    def bin(self, role: str, name: str) -> PurePosixPath:
        return self.current(role) / "bin" / name

    def manifest(self, role: str) -> PurePosixPath:
        return CONFIG / f"{role}.json"

    def unit(self, role: str) -> PurePosixPath:
        return UNIT_DIR / unit_name(role)

    def wants(self, role: str) -> PurePosixPath:
        return WANTS_DIR / unit_name(role)

    @property
    def public_ca(self) -> PurePosixPath:
        """A world-readable copy of the school CA, for copying to agents and browsers."""
        return CONFIG / "ca.pem"


def unit_name(role: str) -> str:
    return f"safeguard-{role}.service"


_SYSTEM_DIRS = {
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",  # noqa: S108 -- refused as a data folder, not used
    "/usr",
    "/var",
    "/var/lib",
}


def target_path(text: str) -> PurePosixPath:
    """A folder given on the command line, as a target path: absolute, normalised, not a system
    folder that uninstall --purge would then remove."""
    if not text.startswith("/"):
        raise ValueError(f"{text!r} is not an absolute path (e.g. /var/lib/safeguard/collector)")
    path = PurePosixPath(os.path.normpath(text))
    if str(path) in _SYSTEM_DIRS or str(path).startswith(str(OPT)):
        raise ValueError(f"{text!r} is a system folder; choose one of its own")
    return path
