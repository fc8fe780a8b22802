"""What the policy child makes, kept on disk, so a restarted service matches from its first
second: the loaded policy and the compiled matchers.

Loading the policy (3-5 s of CPU here: TOML, validation, pattern expansion) and compiling a
profile's matcher (15-30 s) are done in a child (agent/policy_child.py); until the matcher is
ready, keys typed at a login are not captured. The child also keeps what it made, under a name
made of everything it depends on, and the service reads it back at its next start (0.1-0.2 s):

- a loaded policy (``.policy``): the code of ``rules/`` and the bytes it was loaded from (the
  signed bundle as kept in ``policy.json`` with the key that verified it, or the shipped
  lists' files), so an edited ``policy.json`` names another file and is verified afresh;
- a matcher (``.matcher``): the code, the files a matcher is made from (rules/bundle.py
  ``matcher_digest``: the lists, classes, guards, profiles and exemptions; the same lists
  shipped or signed by any collector give the same digest, whatever evidence key or semantic
  exemplars the bundle also carries), and the profile's categories and active exemptions
  (``Compiled.share_key``).

A file is used only if it is whole and kept under its own name (the SHA-256 in its header,
of its name and data, matches), is owned by this account and not writable by others (POSIX;
not checked on Windows), and unpickles into nothing but the classes of what was kept (no
function a planted file could call); anything else is removed, logged as
``policy.cache_refused``, and made again. A kept policy is not verified again: the files are
exactly as trusted as the state folder they sit in (0700, the service's), and whoever can
write there could plant a weaker policy unreported, as they could replace the agent. The
newest few of each kind (by last use) are kept: a matcher about 12 MB, a policy 2 MB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import pickle
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import IO, Any

import rules
from rules import schema

log = logging.getLogger(__name__)

MAGIC = b"safeguard-policy-cache/2\n"  # (1: no name in the header)
MATCHER, POLICY = ".matcher", ".policy"
KEEP = 4  # files of each kind: a policy update and an exemption starting leave a few in play
CHUNK = 1 << 20
_ARRAYS = {("array", "array"), ("array", "_array_reconstructor")}
# What each kind is made of; nothing else loads.
ALLOWED = {
    MATCHER: _ARRAYS | {
        ("rules.automaton", "Automaton"), ("rules.compile", "ComboRule"),
        ("rules.compile", "GuardRule"), ("rules.entries", "Entry"),
        ("rules.entries", "EntryTable"), ("rules.sequences", "Members"),
        ("rules.sequences", "SequenceRule"),
    },
    POLICY: _ARRAYS | {
        ("agent.policy_slim", "PackedExemplars"), ("datetime", "datetime"),
        ("datetime", "timedelta"), ("datetime", "timezone"),
    } | {("rules.schema", name) for name, value in vars(schema).items()
         if isinstance(value, type) and dataclasses.is_dataclass(value)},
}  # fmt: skip


class CacheRefused(Exception):
    """The file is not whole, not this service's, or not kept under this name."""


@cache
def code_fingerprint() -> str:
    """What made what is kept, besides its inputs: the interpreter, every module and word
    list of ``rules/`` (sequences pick their triggers from ``common_words.txt``), and the
    slimming of a PC's policy (agent/policy_slim.py)."""
    digest = hashlib.sha256(sys.version.encode())
    here = Path(rules.__file__).parent
    paths = [*here.glob("*.py"), *here.glob("*.txt"), Path(__file__).with_name("policy_slim.py")]
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _name(*parts: object) -> str:
    joined = "\0".join(map(repr, (code_fingerprint(), *parts)))
    return hashlib.sha256(joined.encode()).hexdigest()[:40]


class PolicyCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def matcher(self, source: str, share_key: tuple[object, ...]) -> Path:
        """Where the tables of a profile's matcher of the policy with files digest
        ``source`` are kept."""
        return self.folder / (_name("matcher", source, share_key) + MATCHER)

    def policy(self, *made_from: bytes | str) -> Path:
        """Where the policy loaded from ``made_from`` (the child's request, as bytes and
        strings) is kept."""
        digest = hashlib.sha256()
        for part in made_from:
            data = part if isinstance(part, bytes) else part.encode()
            digest.update(len(data).to_bytes(8, "big") + data)
        return self.folder / (_name("policy", digest.hexdigest()) + POLICY)

    def in_use(self, path: Path) -> bool:
        """Whether a file is kept at ``path``; if so it is marked as in use, since pruning
        keeps the newest files."""
        try:
            os.utime(path)
        except OSError:
            return path.exists()  # (there, but not ours to mark: still there to read)
        return True

    def load(self, path: Path) -> Any:
        """What is kept at ``path``, or None (nothing kept, or refused and removed)."""
        try:
            with path.open("rb") as fh:
                _check_owner(os.fstat(fh.fileno()))
                found = _read(fh, path.stem, ALLOWED[path.suffix])
            self.in_use(path)
            return found
        except FileNotFoundError:
            return None
        except Exception as exc:  # anything wrong with the file: make it again instead
            log.warning("policy.cache_refused path=%s reason=%s", path, exc)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return None


def write(path: Path, data: bytes) -> None:
    """Keep pickled ``data`` at ``path`` (atomically) and prune the folder. A full disk or
    a read-only folder only costs the next start its load and compile."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".kept-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + path.stem.encode() + b"\n" + _digest(path.stem, data) + b"\n")
                fh.write(data)
            Path(tmp).replace(path)  # (mkstemp made it 0600)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _prune(path.parent, path.suffix)
    except OSError as exc:
        log.warning("policy.cache_not_written path=%s reason=%s", path, exc.strerror or exc)


def _digest(name: str, data: bytes) -> bytes:
    """SHA-256 of the name and the data: a file copied under another name is refused."""
    return hashlib.sha256(name.encode() + b"\0" + data).hexdigest().encode()


def _read(fh: IO[bytes], name: str, allowed: set[tuple[str, str]]) -> Any:
    if fh.readline() != MAGIC:
        raise CacheRefused("not a kept policy or matcher")
    if fh.readline().strip().decode("ascii", "replace") != name:
        raise CacheRefused("kept under another name")
    want = fh.readline().strip()
    start = fh.tell()
    digest = hashlib.sha256(name.encode() + b"\0")
    while chunk := fh.read(CHUNK):  # hashed as it streams: no whole copy in memory
        digest.update(chunk)
    if digest.hexdigest().encode() != want:
        raise CacheRefused("damaged (its SHA-256 does not match)")
    fh.seek(start)
    return _Restricted(fh, allowed).load()


class _Restricted(pickle.Unpickler):
    def __init__(self, fh: IO[bytes], allowed: set[tuple[str, str]]) -> None:
        super().__init__(fh)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise CacheRefused(f"names {module}.{name}, which nothing kept here holds")


def _check_owner(st: os.stat_result) -> None:
    if os.name != "posix":
        return  # (Windows: not checked; the file is as safe as the state folder it is in)
    if st.st_uid != os.geteuid():
        raise CacheRefused(f"owned by uid {st.st_uid}, not this service's {os.geteuid()}")
    if st.st_mode & 0o022:
        raise CacheRefused(f"writable by others (mode {st.st_mode & 0o777:o})")


def _prune(folder: Path, suffix: str) -> None:
    kept = sorted(folder.glob("*" + suffix), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[KEEP:]:
        old.unlink(missing_ok=True)
    for part in folder.glob(".kept-*"):  # a child killed while writing
        if time.time() - part.stat().st_mtime > 3600:
            part.unlink(missing_ok=True)
