"""Sealed screenshots: an image encrypted on the PC to the collector's evidence key.

The PC holds only the collector's X25519 public key (it comes with the signed policy), so
once an image is sealed nothing on the PC can read it back, and a pupil who copies the
agent's files gets ciphertext. The collector opens it with its private key only when a DSL
looks. A sealed file is::

    MAGIC (8) | ephemeral X25519 public key (32) | nonce (12) | ChaCha20-Poly1305 ciphertext

The key is HKDF-SHA256 over the shared secret, salted with both public keys. The associated
data binds the image to its agent and event, so a sealed file cannot be passed off as
another event's screenshot. The event itself carries SHA-256 of the sealed file.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"sgev1\0\0\0"
KEY_LEN = 32
_NONCE_LEN = 12
_HEADER = len(MAGIC) + KEY_LEN + _NONCE_LEN
_INFO = b"safeguard screenshot evidence v1"
MAX_IMAGE = 8 * 1024 * 1024  # a downscaled, compressed screenshot is far smaller


class EvidenceError(ValueError):
    """A sealed file is corrupt, forged, or sealed for another event or key."""


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _aead(shared: bytes, ephemeral: bytes, recipient: bytes) -> ChaCha20Poly1305:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient,
               info=_INFO).derive(shared)  # fmt: skip
    return ChaCha20Poly1305(key)


def _associated(agent_id: str, event_id: str) -> bytes:
    return MAGIC + agent_id.encode() + b"\0" + event_id.encode()


def seal(recipient: bytes, image: bytes, agent_id: str, event_id: str) -> bytes:
    """``image`` sealed to the raw 32-byte X25519 public key ``recipient``."""
    if len(recipient) != KEY_LEN:
        raise EvidenceError(f"the evidence key must be {KEY_LEN} bytes, not {len(recipient)}")
    if len(image) > MAX_IMAGE:
        raise EvidenceError(f"a screenshot of {len(image)} bytes is over the {MAX_IMAGE} limit")
    ephemeral = X25519PrivateKey.generate()
    eph_raw = _raw(ephemeral.public_key())
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    nonce = os.urandom(_NONCE_LEN)  # the ephemeral key is new too; belt and braces
    box = _aead(shared, eph_raw, recipient)
    return MAGIC + eph_raw + nonce + box.encrypt(nonce, image, _associated(agent_id, event_id))


def open_sealed(key: X25519PrivateKey, sealed: bytes, agent_id: str, event_id: str) -> bytes:
    """The image inside ``sealed``; ``EvidenceError`` if it is not one sealed to ``key`` for
    this agent and event, or was changed."""
    if len(sealed) < _HEADER + 16 or not sealed.startswith(MAGIC):
        raise EvidenceError("not a sealed screenshot (wrong header or too short)")
    eph_raw = sealed[len(MAGIC) : len(MAGIC) + KEY_LEN]
    nonce = sealed[len(MAGIC) + KEY_LEN : _HEADER]
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(eph_raw))
        box = _aead(shared, eph_raw, _raw(key.public_key()))
        return box.decrypt(nonce, sealed[_HEADER:], _associated(agent_id, event_id))
    except (InvalidTag, ValueError):
        raise EvidenceError("the screenshot does not open: changed, sealed for another "
                            "event, or to another key") from None  # fmt: skip


def digest(sealed: bytes) -> bytes:
    """What the event carries as ``screenshot_sha256``."""
    return hashlib.sha256(sealed).digest()


def public_key_of(key: X25519PrivateKey) -> bytes:
    return _raw(key.public_key())

