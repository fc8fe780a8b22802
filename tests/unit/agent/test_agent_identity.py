"""State folder, key and address handling, without a collector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.identity import StateDir, StateError, load_ca, load_identity, load_key, write_atomic
from agent.transport import AddressError, parse_address

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "dialled"),
    [
        ("collector:50051", "collector:50051"),
        (" 10.0.0.5:443 ", "10.0.0.5:443"),
        ("[::1]:50051", "[::1]:50051"),
        ("collector.school.internal:0050051", "collector.school.internal:50051"),
    ],
)
def test_addresses_are_checked_and_normalised(given: str, dialled: str) -> None:
    assert parse_address(given) == dialled


@pytest.mark.parametrize(
    "bad", ["collector", "collector:", ":50051", "host:99999", "host:abc", "a b:1", "[::zz]:1"]
)
def test_bad_addresses_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(AddressError, match="collector address"):
        parse_address(bad)


def test_secrets_are_written_private_and_whole(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    write_atomic(path, b"secret", 0o600)
    assert path.read_bytes() == b"secret" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["agent.key"]  # no temporary left over


def test_only_one_process_holds_a_state_folder(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert not state.is_locked()
    with state.locked("running"):
        assert state.is_locked()
        with pytest.raises(StateError, match="another agent process"), state.locked("enrolling"):
            pass
    assert not state.is_locked()


def test_a_key_that_is_not_the_enrolled_one_is_refused(enrolled: StateDir) -> None:
    ident = load_identity(enrolled)
    load_key(enrolled, ident)
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    enrolled.key.write_bytes(other)
    with pytest.raises(StateError, match="does not belong"):
        load_key(enrolled, ident)
    enrolled.key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(StateError, match="not a readable PEM"):
        load_key(enrolled, ident)


def test_a_swapped_ca_is_refused(enrolled: StateDir) -> None:
    ident = load_identity(enrolled)
    load_ca(enrolled, ident)
    enrolled.ca.write_bytes(enrolled.ca.read_bytes() + b"\n")
    with pytest.raises(StateError, match="not the CA"):
        load_ca(enrolled, ident)


def test_a_damaged_identity_says_so(enrolled: StateDir) -> None:
    data = json.loads(enrolled.identity.read_text())
    del data["agent_id"]
    enrolled.identity.write_text(json.dumps(data))
    with pytest.raises(StateError, match="damaged"):
        load_identity(enrolled)


def test_state_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="does not exist"):
        StateDir(tmp_path / "nowhere").require()
    with pytest.raises(StateError, match="not enrolled"):
        StateDir(tmp_path).require()
