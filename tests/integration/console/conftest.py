from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.console.support import ConsoleHarness


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleHarness]:
    """A real collector serving the console on 127.0.0.1, with one account per role."""
    harness = ConsoleHarness(tmp_path / "collector")
    harness.start()
    harness.add_staff()
    try:
        yield harness
    finally:
        harness.stop()
