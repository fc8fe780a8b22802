"""An enrolled-looking state folder for CLI tests that never reach a collector."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from agent.identity import Identity, StateDir, raw_public_key, write_atomic


def self_signed_ca() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(self_signed_ca())
    return path


@pytest.fixture
def enrolled(tmp_path: Path, ca_file: Path) -> StateDir:
    """A state folder as `enroll` leaves it, pointing at a collector that is not there."""
    state = StateDir(tmp_path / "state")
    state.root.mkdir(mode=0o700)
    key = Ed25519PrivateKey.generate()
    ca_pem = ca_file.read_bytes()
    ident = Identity(
        agent_id="ag-unit00000000000000001",
        collector="127.0.0.1:9",
        collector_id="unit",
        public_key=raw_public_key(key).hex(),
        policy_public_key="00" * 32,
        ca_sha256=hashlib.sha256(ca_pem).hexdigest(),
        enrolled_at="2025-01-01T00:00:00+00:00",
        hostname="unit",
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(state.key, pem, 0o600)
    write_atomic(state.ca, ca_pem, 0o644)
    write_atomic(state.identity, json.dumps(asdict(ident)).encode(), 0o600)
    return state
