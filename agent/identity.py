"""Who this agent is: its state folder, its Ed25519 key, and enrolment with the collector.

State folder (0700), one per agent:

    agent.key       Ed25519 private key, PKCS#8 PEM, 0600; generated here, never leaves the PC
    ca.pem          the school CA the agent pins (a copy of what `enroll --ca` was given)
    identity.json   agent_id, collector address, key and CA fingerprints, policy key; 0600.
                    Written last: a folder without it is not enrolled.
    outbox.sqlite   the durable outbox (+ -wal, -shm); see agent/outbox.py
    run.lock        held by `run` (and `enroll`) so two agents never share one folder
    policy.json     the last good signed policy bundle (agent/policy.py)
    policy-cache/   the loaded policy and compiled matchers, kept for the next start
                    (agent/policy_cache.py)

Every file is written to a temporary name, fsynced and renamed, so a crash leaves either the
old file or the new one. identity.json records the fingerprints of the key and CA it belongs
with, so a folder left half re-enrolled is detected instead of used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

if sys.platform == "win32":  # NOT yet run on Windows: msvcrt has no shared locks
    import msvcrt

    def _try_lock(fd: int, shared: bool) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int, shared: bool) -> bool:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger(__name__)

IDENTITY_FORMAT = 1
AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # also safe inside a file name


class StateError(Exception):
    """The state folder is missing, not enrolled, or unreadable. The message says which."""


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def key(self) -> Path:
        return self.root / "agent.key"

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def identity(self) -> Path:
        return self.root / "identity.json"

    @property
    def policy(self) -> Path:
        """The last good signed policy bundle (agent/policy.py): first written at enrolment."""
        return self.root / "policy.json"

    @property
    def policy_cache(self) -> Path:
        """The loaded policy and compiled matchers kept for the next start (agent/
        policy_cache.py); a test run may share one folder between its agents with
        ``SAFEGUARD_POLICY_CACHE``."""
        return Path(os.environ.get("SAFEGUARD_POLICY_CACHE") or self.root / "policy-cache")

    @property
    def outbox(self) -> Path:
        return self.root / "outbox.sqlite"

    @property
    def shipping(self) -> Path:
        """What the shipper last met (agent/shipping_state.py), for `status`."""
        return self.root / "shipping.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "run.lock"

    def require(self) -> None:
        if not self.root.is_dir():
            raise StateError(f"state folder {self.root} does not exist (run `enroll` first)")
        if not self.identity.exists():
            raise StateError(f"{self.root} is not enrolled (run `safeguard-agent enroll`)")

    def is_locked(self) -> bool:
        """Whether an agent process (`run`, `enroll`) holds this folder right now."""
        if not self.lock_file.exists():
            return False
        fd = os.open(self.lock_file, os.O_RDONLY)
        try:
            if not _try_lock(fd, shared=True):
                return True
            _unlock(fd)
        finally:
            os.close(fd)
        return False

    @contextmanager
    def locked(self, what: str) -> Iterator[None]:
        """Hold run.lock for the duration, or fail at once if another process holds it."""
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not _try_lock(fd, shared=False):
                raise StateError(
                    f"another agent process is using {self.root}; stop it before {what}"
                )
            yield
        finally:
            os.close(fd)  # closing releases the lock


@dataclass(frozen=True)
class Identity:
    agent_id: str
    collector: str  # HOST:PORT
    collector_id: str
    public_key: str  # hex of the raw 32-byte Ed25519 key, must match agent.key
    policy_public_key: str  # hex; verifies policy bundles
    ca_sha256: str  # hex fingerprint of ca.pem
    enrolled_at: str  # ISO 8601, UTC
    hostname: str
    format: int = IDENTITY_FORMAT


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Create the file with `mode` from the start (never briefly world-readable), then rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def raw_public_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_ca(ca_pem: bytes, source: str) -> None:
    # Only `enroll` parses the CA; the service hands the pinned bytes to gRPC. Imported here:
    # cryptography's X.509 layer is about 6 MB the running agent does not need.
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        raise StateError(
            f"{source} is not a PEM certificate (expected the collector's ca.pem)"
        ) from None


def load_identity(state: StateDir) -> Identity:
    state.require()
    try:
        data = json.loads(state.identity.read_text(encoding="utf-8"))
        fields = {k: data[k] for k in Identity.__dataclass_fields__}
        ident = Identity(**fields)
    except OSError as exc:
        raise StateError(f"cannot read {state.identity}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(f"{state.identity} is damaged ({exc}); re-enrol with --force") from None
    if ident.format != IDENTITY_FORMAT:
        raise StateError(f"{state.identity} has format {ident.format}; this agent reads 1")
    return ident


def load_key(state: StateDir, ident: Identity) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(state.key.read_bytes(), password=None)
    except OSError as exc:
        raise StateError(f"cannot read private key {state.key}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise StateError(f"{state.key} is not a readable PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise StateError(f"{state.key} is not an Ed25519 key")
    if raw_public_key(key).hex() != ident.public_key:
        raise StateError(f"{state.key} does not belong to {state.identity}; re-enrol with --force")
    return key


def load_ca(state: StateDir, ident: Identity) -> bytes:
    try:
        ca_pem = state.ca.read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read pinned CA {state.ca}: {exc.strerror}") from None
    if hashlib.sha256(ca_pem).hexdigest() != ident.ca_sha256:
        raise StateError(f"{state.ca} is not the CA this agent enrolled with; re-enrol")
    return ca_pem
