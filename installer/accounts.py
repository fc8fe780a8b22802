"""The collector's service account: a system user with no login and no home.

On a real install the system's own `useradd --system` makes it (so nscd, shadow files and any
security labels stay in the system's hands) and `userdel` takes it back. Under --root the
account is written into ROOT/etc/passwd and ROOT/etc/group directly: `useradd --root` would
chroot into the throwaway root, which needs root privileges and a full /etc there (login.defs,
shadow, gshadow), and tests must be able to run without either and read the result back.
"""

from __future__ import annotations

import logging
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from installer.layout import Layout
from installer.transaction import InstallError, Transaction

log = logging.getLogger(__name__)

SYSTEM_IDS = range(999, 99, -1)  # like useradd --system: the highest free id in 100..999
NOLOGIN = "/usr/sbin/nologin"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    comment: str = ""

    @property
    def owner(self) -> tuple[int, int]:
        return (self.uid, self.gid)


def _entries(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split(":") for line in path.read_text().splitlines() if line.strip()]


def lookup(layout: Layout, name: str) -> Account | None:
    if layout.is_throwaway:
        for fields in _entries(layout.host("/etc/passwd")):
            if fields[0] == name and len(fields) >= 5:
                return Account(name, int(fields[2]), int(fields[3]), fields[4])
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(name, entry.pw_uid, entry.pw_gid, entry.pw_gecos)


def ensure(layout: Layout, tx: Transaction, name: str, comment: str) -> tuple[Account, bool]:
    """The account, made if missing; returns it and whether it is ours to remove on --purge:
    made now, or made by an earlier install (kept by uninstall --keep-data; same comment)."""
    found = lookup(layout, name)
    if found is not None:
        log.info("account.exists name=%s uid=%d", name, found.uid)
        return found, found.comment == comment
    account = (
        _add_to_root(layout, tx, name, comment)
        if layout.is_throwaway
        else _useradd(tx, name, comment)
    )
    log.info("account.created name=%s uid=%d", name, account.uid)
    return account, True


def remove(layout: Layout, name: str) -> None:
    """Take back an account the installer made (uninstall)."""
    if layout.is_throwaway:
        for file in ("/etc/passwd", "/etc/group"):
            path = layout.host(file)
            kept = [":".join(f) for f in _entries(path) if f[0] != name]
            if path.exists() and kept:
                path.write_text("".join(line + "\n" for line in kept))
            else:  # a throwaway root's file that held only our account
                path.unlink(missing_ok=True)
        return
    if lookup(layout, name) is not None:
        subprocess.run(["userdel", name], check=True, capture_output=True, text=True)


def _useradd(tx: Transaction, name: str, comment: str) -> Account:
    if shutil.which("useradd") is None:
        raise InstallError("useradd is not installed", fix="apt-get install passwd")
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            NOLOGIN,
            "--comment",
            comment,
            name,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise InstallError(f"could not create the service account {name}: {result.stderr.strip()}")
    tx.on_undo(f"useradd {name}", lambda: _userdel(name))
    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid, comment)


def _userdel(name: str) -> None:
    subprocess.run(["userdel", name], check=True, capture_output=True)


def _add_to_root(layout: Layout, tx: Transaction, name: str, comment: str) -> Account:
    passwd, group = layout.host("/etc/passwd"), layout.host("/etc/group")
    used_uids = {int(f[2]) for f in _entries(passwd) if len(f) > 2}
    used_gids = {int(f[2]) for f in _entries(group) if len(f) > 2}
    uid = next((i for i in SYSTEM_IDS if i not in used_uids and i not in used_gids), None)
    if uid is None:
        raise InstallError(f"no free system user id (100-999) in {passwd}")
    for path, line in (
        (passwd, f"{name}:x:{uid}:{uid}:{comment}:/nonexistent:{NOLOGIN}"),
        (group, f"{name}:x:{uid}:"),
    ):
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        tx.write(path, old + line.encode() + b"\n", 0o644)
    return Account(name, uid, uid, comment)
