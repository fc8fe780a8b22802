"""Publishing signed policy bundles and serving them to agents.

`rules/bundle.py` compiles and signs; the collector keeps every published bundle in
DIR/policy/bundle-<version>.json and the newest as DIR/policy/current.json, written
atomically, so `publish` works whether or not `serve` is running (no database involved) and a
running collector sees a new bundle at the next Hello or fetch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector import pki
from collector.paths import DataDir, write_secret
from protos import ingest_pb2
from rules import bundle as bundles
from rules.load import DEFAULT_DIR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    version: int
    path: Path
    size: int


def _current_path(data: DataDir) -> Path:
    return data.policy_dir / "current.json"


def _version_of(raw: bytes) -> int:
    """The version a bundle says it is, without verifying it (we signed it)."""
    import base64

    payload = base64.b64decode(json.loads(raw)["payload"])
    return int(json.loads(payload)["version"])


_cache: dict[Path, tuple[float, int, bytes]] = {}


def current(data: DataDir) -> tuple[int, bytes] | None:
    """(version, bundle bytes) of the newest published bundle, read again only if changed."""
    path = _current_path(data)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    cached = _cache.get(path)
    if cached is None or cached[0] != mtime:
        raw = path.read_bytes()
        cached = (mtime, _version_of(raw), raw)
        _cache[path] = cached
    return cached[1], cached[2]


def current_version(data: DataDir) -> str:
    found = current(data)
    return str(found[0]) if found else ""


def newer_than(data: DataDir, have_version: str) -> ingest_pb2.PolicyBundle:
    """The current bundle if it is newer than what the agent has; else an empty answer."""
    found = current(data)
    have = int(have_version) if have_version.isdigit() else 0
    if found is None or found[0] <= have:
        return ingest_pb2.PolicyBundle()
    return ingest_pb2.PolicyBundle(version=str(found[0]), bundle=found[1])


def publish(data: DataDir, rules_dir: Path | None = None) -> Published:
    """Validate, version, sign and publish the policy in rules_dir (default: the shipped one).
    Raises rules.schema.PolicyError naming file and line when the policy does not load."""
    folder = (rules_dir or DEFAULT_DIR).resolve()
    found = current(data)
    version = (found[0] if found else 0) + 1
    key = pki.load_policy_key(data)
    raw = bundles.build_bundle(folder, version, key)
    public = Ed25519PublicKey.from_public_bytes(data.policy_pub.read_bytes())
    bundles.verify_bundle(raw, public)  # what agents will do: never publish what they refuse
    path = data.policy_dir / f"bundle-{version:06d}.json"
    write_secret(path, raw)
    write_secret(_current_path(data), raw)
    log.info("policy.published version=%d bytes=%d rules=%s", version, len(raw), folder)
    return Published(version, path, len(raw))
