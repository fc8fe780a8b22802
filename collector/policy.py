"""Serving signed policy bundles to agents. Compiling and signing them is `rules/bundle.py`'s job;
the collector keeps the newest published bundle in DIR/policy/current.bundle."""

from __future__ import annotations

from collector.paths import DataDir
from protos import ingest_pb2


def _current(data: DataDir) -> ingest_pb2.PolicyBundle | None:
    path = data.policy_dir / "current.bundle"
    if not path.exists():
        return None
    bundle = ingest_pb2.PolicyBundle()
    bundle.ParseFromString(path.read_bytes())
    return bundle


def current_version(data: DataDir) -> str:
    bundle = _current(data)
    return bundle.version if bundle else ""


def newer_than(data: DataDir, have_version: str) -> ingest_pb2.PolicyBundle:
    """The current bundle if the agent lacks it; an empty bundle when nothing is newer."""
    bundle = _current(data)
    if bundle is None or bundle.version == have_version:
        return ingest_pb2.PolicyBundle()
    return bundle
