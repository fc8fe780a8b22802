"""`safeguard-install uninstall`: take back what an install made.

Always removed: the service (stopped, unit and enable link), the keyboard helper's autostart
entry, the venvs under /opt/safeguard/ROLE, the manifest, and the folders the install made if
they are empty; /usr/local/sbin/safeguard-install goes with the last role (command.py).
`--keep-data` (the default) leaves the data or state folder, so a reinstall picks up the same
identity, outbox and chain (or the same database); `--purge` removes it too, and the service
account if the install made it. An external --python-env is never deleted.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from pathlib import Path, PurePosixPath

from installer import accounts, command, manifest
from installer.context import Context
from installer.layout import AUTOSTART, CONFIG, OPT, ROLES
from installer.transaction import InstallError

log = logging.getLogger(__name__)


def uninstall(ctx: Context, roles: list[str], yes: bool, purge: bool) -> int:
    layout = ctx.layout
    found = [m for r in (roles or ROLES) if (m := manifest.load(layout, r)) is not None]
    if not found:
        asked = " or ".join(roles or ROLES)
        raise InstallError(f"no {asked} is installed here; nothing to remove")
    ctx.require_root()
    names = ", ".join(m.role for m in found)
    keep = "and DELETE its data (database, keys, outbox)" if purge else "keeping its data"
    if not yes and not _confirm(f"Remove the safeguard {names} {keep}?"):
        print("nothing removed")
        return 1
    for m in found:
        # read again: removing the first role may have handed it the command link
        _remove(ctx, manifest.load(layout, m.role) or m, purge)
    ctx.services.reload()
    for folder in (CONFIG, OPT):  # ours by name: gone once empty
        _rmdir_if_empty(layout.host(folder))
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise InstallError(
            "uninstall asks before removing anything, and there is no terminal to ask on",
            fix="add --yes to remove without asking (e.g. from a script)",
        )
    answer = input(f"{question} Type yes to go on: ")
    return answer.strip().lower() == "yes"


def _remove(ctx: Context, m: manifest.Manifest, purge: bool) -> None:
    layout = ctx.layout
    role = m.role
    ctx.services.stop(role)
    data = PurePosixPath(str(m.settings.get("data") or m.settings.get("state")))
    for target in (layout.wants(role), layout.unit(role)):
        layout.host(target).unlink(missing_ok=True)
    if role == "agent":
        layout.host(AUTOSTART).unlink(missing_ok=True)
    if role == "collector":
        layout.host(layout.public_ca).unlink(missing_ok=True)
    command.release(layout, m)  # before the venv it runs goes
    shutil.rmtree(layout.host(layout.env_dir(role)), ignore_errors=True)  # never --python-env
    if purge:
        shutil.rmtree(layout.host(data), ignore_errors=True)
        for parent in data.parents:  # e.g. /var/lib/safeguard, once empty
            if "safeguard" in parent.name:
                _rmdir_if_empty(layout.host(parent))
        if m.account_created:
            accounts.remove(layout, m.account)
    layout.host(layout.manifest(role)).unlink(missing_ok=True)
    for folder in sorted(m.created_dirs, key=lambda p: -len(PurePosixPath(p).parts)):
        _rmdir_if_empty(layout.host(folder))
    kept = "" if purge else f"; kept {data} (install again to use it, or uninstall --purge)"
    print(f"removed the {role}{kept}")
    log.info("uninstall.done role=%s purge=%s", role, purge)


def _rmdir_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty or not there: not ours to remove
        path.rmdir()
