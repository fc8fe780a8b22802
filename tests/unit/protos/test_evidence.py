"""Sealed screenshots open only with the collector's key, for their own agent and event."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protos.evidence import EvidenceError, digest, open_sealed, public_key_of, seal

pytestmark = pytest.mark.unit
IMAGE = b"\x89PNG pretend image bytes " * 100


def test_sealed_opens_with_the_collectors_key() -> None:
    key = X25519PrivateKey.generate()
    sealed = seal(public_key_of(key), IMAGE, "agent-1", "ev-1")
    assert IMAGE not in sealed
    assert open_sealed(key, sealed, "agent-1", "ev-1") == IMAGE
    assert len(digest(sealed)) == 32


def test_sealing_twice_gives_different_files() -> None:
    pub = public_key_of(X25519PrivateKey.generate())
    assert seal(pub, IMAGE, "a", "e") != seal(pub, IMAGE, "a", "e")


@pytest.mark.parametrize("agent_id, event_id", [("agent-2", "ev-1"), ("agent-1", "ev-2")])
def test_a_screenshot_cannot_pass_as_another_events(agent_id: str, event_id: str) -> None:
    key = X25519PrivateKey.generate()
    sealed = seal(public_key_of(key), IMAGE, "agent-1", "ev-1")
    with pytest.raises(EvidenceError, match="sealed for another event"):
        open_sealed(key, sealed, agent_id, event_id)


def test_a_changed_byte_or_another_key_is_refused() -> None:
    key = X25519PrivateKey.generate()
    sealed = bytearray(seal(public_key_of(key), IMAGE, "a", "e"))
    sealed[-1] ^= 1
    with pytest.raises(EvidenceError):
        open_sealed(key, bytes(sealed), "a", "e")
    with pytest.raises(EvidenceError):
        other = X25519PrivateKey.generate()
        open_sealed(other, seal(public_key_of(key), IMAGE, "a", "e"), "a", "e")
    with pytest.raises(EvidenceError, match="not a sealed screenshot"):
        open_sealed(key, b"junk", "a", "e")
