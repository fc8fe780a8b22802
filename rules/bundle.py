"""Signed policy bundles: compile, sign, verify, and keep the last good one on disk.

A bundle is canonical JSON (sorted keys, no spaces, UTF-8)::

    {"format": "safeguard-policy-bundle/1", "payload": <base64>, "signature": <base64>}

where the payload is itself canonical JSON of ``{"format", "version", "files"}`` and
``files`` maps each policy file's relative path to its text. Shipping the validated
source text (not a derived form) means the agent re-validates with the same loader and
errors still name file and line. Only the payload bytes are signed (Ed25519), so there is
no re-canonicalisation on the verifying side.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rules.load import load_files, read_folder
from rules.schema import Policy, PolicyError

FORMAT = "safeguard-policy-bundle/1"
MAX_BUNDLE = 32 * 1024 * 1024


class BundleError(PolicyError):
    """A bundle is corrupt, forged or not newer than the one installed."""


@dataclass(frozen=True)
class Bundle:
    version: int
    policy: Policy
    files: dict[str, str]
    data: bytes  # the signed bytes as received, for ``save_last_good``


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def files_digest(files: dict[str, str]) -> str:
    """SHA-256 of a policy's files: the same lists give the same digest, whether shipped
    with the agent or signed into any collector's bundle (agent/policy_cache.py)."""
    return hashlib.sha256(_canonical(files)).hexdigest()


# The files a keyword matcher is made from (rules/compile.py reads the policy's categories,
# word classes, guards, profiles and exemptions; tests/unit/rules/test_bundle.py fails if it
# reads another field). The others differ from school to school (the collector's evidence
# key) or change without the lists (the semantic stage, USB, URLs, incident rules).
MATCHER_FILES = ("policy.toml", "profiles.toml", "exemptions.toml", "classes.toml",
                 "guards.toml", "keywords/", "classes/", "guards/")  # fmt: skip


def matcher_digest(files: dict[str, str]) -> str:
    """SHA-256 of the files a matcher is made from: one school's lists compile to the same
    matcher as another's, or as the shipped ones, whatever else their bundles carry."""
    return files_digest({k: v for k, v in files.items() if k.startswith(MATCHER_FILES)})


def compile_bundle(folder: Path, version: int) -> bytes:
    """The deterministic, unsigned payload for a policy folder (validated first)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BundleError(f"bundle version must be a positive integer, got {version!r}")
    files = read_folder(folder)
    load_files(files, prefix=f"{folder}/")  # refuse to publish a policy that does not load
    return _canonical({"format": FORMAT, "version": version, "files": files})


def sign_bundle(payload: bytes, key: Ed25519PrivateKey) -> bytes:
    return _canonical({
        "format": FORMAT,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signature": base64.b64encode(key.sign(payload)).decode("ascii"),
    })  # fmt: skip


def build_bundle(folder: Path, version: int, key: Ed25519PrivateKey) -> bytes:
    return sign_bundle(compile_bundle(folder, version), key)


def signed_payload(data: bytes, key: Ed25519PublicKey) -> bytes:
    """The payload of a bundle whose signature verifies (milliseconds: nothing is loaded).
    Raises ``BundleError`` for a forged or corrupt one."""
    if len(data) > MAX_BUNDLE:
        raise BundleError(f"bundle is corrupt: {len(data)} bytes is over the limit")
    try:
        outer = json.loads(data.decode("utf-8"))
        if not isinstance(outer, dict) or outer.get("format") != FORMAT:
            raise BundleError(f"bundle is corrupt: not a {FORMAT} file")
        payload = base64.b64decode(outer["payload"], validate=True)
        signature = base64.b64decode(outer["signature"], validate=True)
    except BundleError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, binascii.Error,
            ValueError) as exc:  # fmt: skip
        raise BundleError(f"bundle is corrupt: {type(exc).__name__}") from None
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        raise BundleError("bundle signature does not verify: forged, corrupt, or signed "
                          "with another key; keeping the installed policy") from None  # fmt: skip
    return payload


def verify_bundle(data: bytes, key: Ed25519PublicKey, installed: int | None = None) -> Bundle:
    """Check signature, format and version, then load the policy it carries. Raises
    ``BundleError`` for a forged, corrupt or not-newer bundle (and ``PolicyError`` from
    the loader should a signed policy not validate)."""
    payload = signed_payload(data, key)
    try:
        inner = json.loads(payload.decode("utf-8"))
        version, files = inner["version"], inner["files"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BundleError(f"bundle payload is corrupt: {type(exc).__name__}") from None
    good_files = isinstance(files, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items())  # fmt: skip
    good_version = isinstance(version, int) and not isinstance(version, bool)
    if inner.get("format") != FORMAT or not good_version or not good_files:
        raise BundleError("bundle payload is corrupt: wrong shape")
    if installed is not None and version <= installed:
        raise BundleError(f"bundle version {version} is not newer than installed version "
                          f"{installed}; refused")  # fmt: skip
    policy = load_files(files, prefix="bundle:")
    return Bundle(version, policy, files, data)


def save_last_good(path: Path, bundle: Bundle) -> None:
    """Atomically replace the on-disk copy (write, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".bundle-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(bundle.data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).chmod(0o600)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_last_good(path: Path, key: Ed25519PublicKey) -> Bundle | None:
    """The saved bundle, re-verified (a pupil may have edited the file), or None if
    there is none. Raises ``BundleError`` if the file is there but not valid."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror})") from None
    return verify_bundle(data, key)
