"""Shared fixtures for the rules tests: the shipped policy, compiled once per session."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rules.compile import Compiled
from rules.load import DEFAULT_DIR, load_policy
from rules.schema import Policy

# Inside the shipped history exemption (2025-01-06 .. 2025-02-14).
DURING_EXEMPTION = datetime(2025, 1, 20, 10, 0, tzinfo=UTC)
AFTER_EXEMPTION = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="session")
def ks2(policy: Policy) -> Compiled:
    return Compiled(policy, "ks2", AFTER_EXEMPTION)


@pytest.fixture(scope="session")
def ks2_exempt(policy: Policy) -> Compiled:
    return Compiled(policy, "ks2", DURING_EXEMPTION)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped policy folder."""
    dest = tmp_path / "lists"
    shutil.copytree(DEFAULT_DIR, dest)
    return dest
