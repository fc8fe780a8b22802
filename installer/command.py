"""`/usr/local/sbin/safeguard-install`: the installer on root's PATH once a role is installed.

It is a symlink to `/opt/safeguard/ROLE/current/bin/safeguard-install`, written relative so that
it resolves the same under --root. So it follows `current` through upgrades. The first role
installed on a machine makes it and the second shares it. Uninstalling the role it points at
hands it to the other role when that is still installed, and otherwise removes it. A file or
link there that is not ours is left alone, and the install says so.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import PurePosixPath

from installer import manifest
from installer.layout import COMMAND_LINK, ROLES, Layout
from installer.transaction import Transaction

log = logging.getLogger(__name__)


def target(layout: Layout, role: str) -> str:
    """What the link holds for `role`: the venv's script, relative to the link's folder."""
    return os.path.relpath(layout.bin(role, "safeguard-install"), COMMAND_LINK.parent)


def points_at(layout: Layout) -> str | None:
    """The role whose script the link runs; None when there is no link or it is not ours."""
    path = layout.host(COMMAND_LINK)
    if not path.is_symlink():
        return None
    held = str(path.readlink())
    return next((role for role in ROLES if held == target(layout, role)), None)


def _other(role: str) -> str:
    return next(r for r in ROLES if r != role)


def ensure(layout: Layout, tx: Transaction, role: str) -> bool:
    """Make the link for `role` (undone with `tx`), or share the other installed role's.
    Returns False when a file or link that is not ours is there (left as it is)."""
    path = layout.host(COMMAND_LINK)
    if path.is_symlink() or os.path.lexists(path):
        owner = points_at(layout)
        if owner is None:
            log.warning("command.foreign path=%s", path)
            return False
        if owner != role and manifest.load(layout, owner) is not None:
            return True  # the other role's, still installed: shared
    tx.symlink(path, target(layout, role))  # new, or left behind by a role now gone
    return True


def release(layout: Layout, m: manifest.Manifest) -> None:
    """On uninstalling `m.role`: hand the link to the other role if it is installed, else remove
    it. A link that points elsewhere (the other role's, or changed by hand) is left alone."""
    path = layout.host(COMMAND_LINK)
    if not m.command_link or points_at(layout) != m.role:
        return
    other = manifest.load(layout, _other(m.role))
    if other is None:
        path.unlink(missing_ok=True)
        return
    handed = Transaction()
    handed.symlink(path, target(layout, other.role))
    # The folders this install made for the link (under --root: usr/local/sbin) go with it, so
    # the other role's uninstall removes them once they are empty.
    link_dirs = {d for d in m.created_dirs if PurePosixPath(d) in COMMAND_LINK.parents}
    dirs = sorted(set(other.created_dirs) | link_dirs)
    updated = dataclasses.replace(other, command_link=str(COMMAND_LINK), created_dirs=dirs)
    manifest.save(layout, handed, updated, keep_dirs=True)


def report_line(linked: bool) -> str:
    """What an install says about `safeguard-install` itself, for later commands here."""
    if linked:
        return f"{COMMAND_LINK} (from now on `sudo safeguard-install ...` works here)"
    return f"{COMMAND_LINK} is not ours and was left as it is"
