"""Shared test helpers. Real components only: a missing tool skips on a laptop, fails in CI."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import CollectorHarness

pytest_plugins = ["tests.leaks", "tests.timings"]


def pytest_configure(config: pytest.Config) -> None:
    """Agents started by the tests share one folder of loaded policies and compiled
    matchers (agent/policy_cache.py): the shipped lists take 3-5 s of CPU to load and 15-30
    s to compile, and every test that starts an agent would pay it again. Files are named by
    the code and lists they were made from, so a stale one is never read; the cache's own
    tests use their own folders."""
    shared = Path(tempfile.gettempdir()) / f"safeguard-test-policy-cache-{os.getuid()}"
    os.environ.setdefault("SAFEGUARD_POLICY_CACHE", str(shared))


def require_tool(name: str) -> str:
    """Path of a tool the test needs. Skips when absent, but fails when CI=true."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (scripts/test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def require(condition: bool, message: str) -> None:
    """Like require_tool, for what is not a tool on the PATH: skip here, fail when CI=true."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorHarness]:
    """A real collector (TLS gRPC on 127.0.0.1, DuckDB under tmp_path), started."""
    harness = CollectorHarness(tmp_path / "collector")
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()

