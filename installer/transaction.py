"""Changes that can be undone: every step registers how to take itself back.

An install runs inside one `Transaction`. If any step fails, the steps already done are undone
in reverse order, so a failed install leaves the machine as it was. Writes are idempotent: a
file whose bytes, mode and owner are already right is not touched, which is what makes running
an install twice change nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

Owner = tuple[int, int] | None  # (uid, gid); None: leave as created


class InstallError(Exception):
    """A message for the technician, with what to do about it. The command exits non-zero."""

    def __init__(self, message: str, fix: str = "", code: int = 1) -> None:
        super().__init__(message)
        self.fix = fix
        self.code = code


def chown(path: Path, owner: Owner) -> None:
    """Set the owner when we can (as root); a throwaway --root run by a user keeps its own."""
    if owner is not None and os.geteuid() == 0:
        os.chown(path, *owner, follow_symlinks=False)


def chown_tree(path: Path, owner: Owner) -> None:
    if owner is None or os.geteuid() != 0:
        return
    chown(path, owner)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            chown(Path(dirpath) / name, owner)


class Transaction:
    """Run steps; on an exception, undo the ones done (newest first) and re-raise."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self.changed = False
        self.created_dirs: list[Path] = []  # recorded so uninstall can take them back

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.rollback()
        else:
            self._undo.clear()

    def on_undo(self, what: str, action: Callable[[], None]) -> None:
        self._undo.append((what, action))
        self.changed = True

    def rollback(self) -> None:
        while self._undo:
            what, action = self._undo.pop()
            try:
                action()
                log.info("rollback.done step=%s", what)
            except Exception as exc:  # keep undoing the rest; say what stays behind
                log.error("rollback.failed step=%s error=%s", what, exc)

    def mkdir(self, path: Path, mode: int, owner: Owner = None) -> None:
        """Make `path` (and missing parents, 0755) with `mode`; undo removes what was made."""
        missing = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for new in reversed(missing):
            new.mkdir(mode=0o755)
            self.created_dirs.append(new)
            self.on_undo(f"mkdir {new}", _remover(new))
        if not missing and not path.is_dir():
            raise InstallError(f"{path} exists and is not a folder")
        self._set_mode(path, mode, owner)

    def write(self, path: Path, data: bytes, mode: int, owner: Owner = None) -> bool:
        """Write a file unless it already holds exactly this; undo restores what was there."""
        if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
            self._set_mode(path, mode, owner)
            return False
        if not path.parent.is_dir():
            self.mkdir(path.parent, 0o755)
        old = path.read_bytes() if path.is_file() else None
        old_mode = stat.S_IMODE(path.stat().st_mode) if old is not None else 0
        tmp = path.with_name(f".{path.name}.install-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            tmp.chmod(mode)  # the umask may have narrowed it
            chown(tmp, owner)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if old is None:
            self.on_undo(f"write {path}", lambda: path.unlink(missing_ok=True))
        else:
            self.on_undo(f"rewrite {path}", lambda: _restore(path, old, old_mode))
        return True

    def symlink(self, path: Path, target: str) -> bool:
        """Point `path` at `target`; undo puts back the old link (or removes the new one)."""
        if path.is_symlink() and str(path.readlink()) == target:
            return False
        if path.exists() and not path.is_symlink():
            raise InstallError(f"{path} exists and is not a symbolic link; move it away first")
        if not path.parent.is_dir():
            self.mkdir(path.parent, 0o755)
        old = str(path.readlink()) if path.is_symlink() else None
        tmp = path.with_name(f".{path.name}.install-tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        try:
            tmp.replace(path)  # atomic: a service restarting now sees the old or the new
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if old is None:
            self.on_undo(f"link {path}", lambda: path.unlink(missing_ok=True))
        else:
            self.on_undo(f"relink {path}", lambda: _relink(path, old))
        return True

    def _set_mode(self, path: Path, mode: int, owner: Owner) -> None:
        st = path.stat()
        if stat.S_IMODE(st.st_mode) != mode:
            old = stat.S_IMODE(st.st_mode)
            path.chmod(mode)
            self.on_undo(f"chmod {path}", lambda: path.chmod(old))
        if owner is not None and os.geteuid() == 0 and (st.st_uid, st.st_gid) != owner:
            old_owner = (st.st_uid, st.st_gid)
            chown(path, owner)
            self.on_undo(f"chown {path}", lambda: chown(path, old_owner))


def _remover(path: Path) -> Callable[[], None]:
    return lambda: shutil.rmtree(path, ignore_errors=True)


def _restore(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    path.chmod(mode)


def _relink(path: Path, target: str) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)
