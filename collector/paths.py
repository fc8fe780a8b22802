"""Where a collector keeps its files. One data folder holds everything; nothing else is read."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"  # given to agents with `enroll --ca`

    @property
    def ca_key(self) -> Path:
        return self.root / "secrets" / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "tls" / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "secrets" / "server.key"

    @property
    def policy_key(self) -> Path:
        return self.root / "secrets" / "policy.key"

    @property
    def policy_pub(self) -> Path:
        return self.root / "policy.pub"

    @property
    def evidence_key(self) -> Path:
        # X25519: PCs seal screenshots to its public half; only the collector opens them.
        return self.root / "secrets" / "evidence.key"

    @property
    def evidence_pub(self) -> Path:
        return self.root / "evidence.pub"

    @property
    def screenshots_dir(self) -> Path:
        return self.root / "screenshots"  # sealed files, as the PCs sent them

    @property
    def policy_dir(self) -> Path:
        return self.root / "policy"

    @property
    def database(self) -> Path:
        return self.root / "collector.duckdb"

    @property
    def agents_journal(self) -> Path:
        # Append-only copy of enrolments and revocations, so a corrupt database loses no agent.
        return self.root / "agents.jsonl"

    @property
    def admin_socket(self) -> Path:
        return self.root / "admin.sock"

    @property
    def collector_id_file(self) -> Path:
        return self.root / "collector-id"

    def is_initialised(self) -> bool:
        return self.database.exists() and self.ca_cert.exists()


def make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def write_secret(path: Path, data: bytes) -> None:
    """Write a file readable by the owner only, created that way (never briefly world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def secret_key(data: DataDir, name: str) -> bytes:
    """A 32-byte key in DATA/secrets/<name>, made on first use (owner-only)."""
    path = data.root / "secrets" / name
    if not path.exists():
        path.parent.mkdir(mode=0o700, exist_ok=True)
        write_secret(path, os.urandom(32))
    return path.read_bytes()


def write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)
