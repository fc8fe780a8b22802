"""`safeguard-install uninstall`: take back what an install made.

Always removed: the service (stopped, unit and enable link), the keyboard helper's autostart
entry, the venvs under /opt/safeguard/ROLE, the manifest, and the folders the install made if
they are empty; /usr/local/sbin/safeguard-install goes with the last role (command.py).
`--keep-data` (the default) leaves the data or state folder, so a reinstall picks up the same
identity, outbox and chain (or the same database); `--purge` removes it too, and the service
account if the install made it. An external --python-env is never deleted.

What cannot be removed (an account a process still uses, a folder that will not go) is
reported at the end, with the exit code 1; it never stops the rest half-way. Processes
started by hand from the role's venv (the advice where systemd is not running) are stopped
first, as the service would be.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
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
    problems: list[str] = []
    for m in found:
        # read again: removing the first role may have handed it the command link
        problems += _remove(ctx, manifest.load(layout, m.role) or m, purge)
    ctx.services.reload()
    for folder in (CONFIG, OPT):  # ours by name: gone once empty
        _rmdir_if_empty(layout.host(folder))
    for problem in problems:
        print(f"could not remove: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise InstallError(
            "uninstall asks before removing anything, and there is no terminal to ask on",
            fix="add --yes to remove without asking (e.g. from a script)",
        )
    answer = input(f"{question} Type yes to go on: ")
    return answer.strip().lower() == "yes"


def _remove(ctx: Context, m: manifest.Manifest, purge: bool) -> list[str]:
    """Remove one role; returns what could not be removed."""
    layout = ctx.layout
    role = m.role
    problems: list[str] = []
    ctx.services.stop(role)
    problems += _stop_by_hand(role, layout.host(layout.env_dir(role)))
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
            try:
                accounts.remove(layout, m.account)
            except (subprocess.CalledProcessError, OSError) as exc:
                said = (getattr(exc, "stderr", "") or str(exc)).strip()
                problems.append(f"the account {m.account} ({said}); `userdel {m.account}` "
                                "once nothing runs as it")  # fmt: skip
    layout.host(layout.manifest(role)).unlink(missing_ok=True)
    for folder in sorted(m.created_dirs, key=lambda p: -len(PurePosixPath(p).parts)):
        _rmdir_if_empty(layout.host(folder))
    kept = "" if purge else f"; kept {data} (install again to use it, or uninstall --purge)"
    print(f"removed the {role}{kept}")
    log.info("uninstall.done role=%s purge=%s problems=%d", role, purge, len(problems))
    return problems


STOP_WAIT_S = 15.0


def _stop_by_hand(role: str, env: Path) -> list[str]:
    """Stop processes running from the role's venv that the service manager does not know
    (started by hand): SIGTERM, then SIGKILL after STOP_WAIT_S. Returns what would not stop.

    A process counts when the program it runs is in a venv's bin folder under ``env``: its
    first argument, or its second after a Python interpreter (`python .../bin/safeguard-
    collector`). A viewer or a copy of a file there (`less`, `tail`, `rsync`) does not, and
    neither does the installer or any process it runs under (sudo, the shell)."""
    prefixes = {f"{env}/"}
    with contextlib.suppress(OSError):
        prefixes.add(f"{env.resolve()}/")
    ours = _ancestors()  # the installer may itself run from that venv
    pids = [pid for pid in _pids() if pid not in ours and _runs_from(pid, tuple(prefixes))]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        if _runs_from(pid, tuple(prefixes)):  # still the same program, not a reused pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if pids:
        print(f"stopped {len(pids)} {role} process(es) started by hand (pids "
              f"{', '.join(map(str, pids))})")  # fmt: skip
        log.info("uninstall.stopped_by_hand role=%s pids=%s", role, pids)
    time.sleep(0.2 if left else 0)
    return [f"{role} process {p} (it would not stop)" for p in left if _alive(p)]


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _ancestors() -> set[int]:
    """This process and every one above it."""
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def _runs_from(pid: int, prefixes: tuple[str, ...]) -> bool:
    try:
        args = [a.decode(errors="replace")
                for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2]]  # fmt: skip
    except OSError:
        return False
    program = args[0] if args else ""
    if Path(program).name.startswith("python") and len(args) > 1 and args[1].startswith(prefixes):
        program = args[1]
    return program.startswith(prefixes) and "/bin/" in program


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped


def _rmdir_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty or not there: not ours to remove
        path.rmdir()
