"""Compiled matchers kept on disk, so a restarted service matches from its first second.

Compiling the shipped lists for a profile takes 15-30 s of CPU on a PC (agent/policy_child.py);
until it ends, keys typed at a login are not captured. The tables depend only on the policy's
files, the profile's categories and active exemptions (``Compiled.share_key``) and the code
of ``rules/``, so they are kept under a name made of those, and read back in a fifth of a
second at the next start. The child that compiles writes the file; the service reads it.

A file is used only if it is whole (the SHA-256 in its header matches), is owned by this
account and not writable by others, and unpickles into nothing but the matcher's own
classes: a damaged, planted or foreign file is removed and the matcher compiled as before,
with a warning. The folder keeps the newest few files (each about 15 MB).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import IO, Any

import rules

log = logging.getLogger(__name__)

MAGIC = b"safeguard-matcher/1\n"
SUFFIX = ".matcher"
KEEP = 4  # files kept: a policy update and an exemption starting leave a few keys in play
CHUNK = 1 << 20
# What the matcher's tables are made of (rules/compile.py ``tables``); nothing else loads:
# no function a planted file could call.
ALLOWED = {
    ("array", "array"), ("array", "_array_reconstructor"), ("rules.automaton", "Automaton"),
    ("rules.compile", "ComboRule"), ("rules.compile", "GuardRule"), ("rules.entries", "Entry"),
    ("rules.entries", "EntryTable"), ("rules.sequences", "Members"),
    ("rules.sequences", "SequenceRule"),
}  # fmt: skip


class CacheRefused(Exception):
    """The file is not one this service wrote for this key."""


@cache
def code_fingerprint() -> str:
    """The code the tables were made by: every module of ``rules/`` and the interpreter."""
    digest = hashlib.sha256(sys.version.encode())
    for path in sorted(Path(rules.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class MatcherCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, source: str, share_key: tuple[object, ...]) -> Path:
        """Where the tables of the policy with files digest ``source`` are kept."""
        name = hashlib.sha256(f"{code_fingerprint()}\0{source}\0{share_key!r}".encode())
        return self.folder / (name.hexdigest()[:40] + SUFFIX)

    def load(self, path: Path) -> dict[str, Any] | None:
        """The tables kept at ``path``, or None (none kept, or refused and removed)."""
        try:
            with path.open("rb") as fh:
                _check_owner(os.fstat(fh.fileno()))
                return _read(fh)
        except FileNotFoundError:
            return None
        except Exception as exc:  # anything wrong with the file: compile instead
            log.warning("policy.cache_refused path=%s reason=%s", path, exc)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return None


def write(path: Path, data: bytes) -> None:
    """Keep pickled tables at ``path`` (atomically) and prune the folder. A full disk or a
    read-only folder only costs the next start its compile."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".matcher-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n")
                fh.write(data)
            Path(tmp).replace(path)  # (mkstemp made it 0600)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _prune(path.parent)
    except OSError as exc:
        log.warning("policy.cache_not_written path=%s reason=%s", path, exc.strerror or exc)


def _read(fh: IO[bytes]) -> dict[str, Any]:
    if fh.readline() != MAGIC:
        raise CacheRefused("not a matcher file")
    want = fh.readline().strip().decode("ascii", "replace")
    start = fh.tell()
    digest = hashlib.sha256()
    while chunk := fh.read(CHUNK):  # hashed as it streams: no whole copy in memory
        digest.update(chunk)
    if digest.hexdigest() != want:
        raise CacheRefused("damaged (its SHA-256 does not match)")
    fh.seek(start)
    tables = _Tables(fh).load()
    if not isinstance(tables, dict):
        raise CacheRefused("not a matcher's tables")
    return tables


class _Tables(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise CacheRefused(f"names {module}.{name}, which no matcher holds")


def _check_owner(st: os.stat_result) -> None:
    if os.name != "posix":
        return  # (Windows: not checked; the file is as safe as the state folder it is in)
    if st.st_uid != os.geteuid():
        raise CacheRefused(f"owned by uid {st.st_uid}, not this service's {os.geteuid()}")
    if st.st_mode & 0o022:
        raise CacheRefused(f"writable by others (mode {st.st_mode & 0o777:o})")


def _prune(folder: Path) -> None:
    kept = sorted(folder.glob("*" + SUFFIX), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[KEEP:]:
        old.unlink(missing_ok=True)
