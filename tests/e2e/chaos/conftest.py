"""Fixtures of the chaos suite: a seed (fixed, and fresh each run) and sites torn down whole."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.clock import Clock, libfaketime
from tests.chaos.disk import MountRefused
from tests.chaos.site import ChaosSite, seed_from_env
from tests.conftest import require, require_tool

FIXED_SEED = 20_15


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The RNG's seed: fixed for the one-fault tests, fresh for those marked
    `random_seed`; CHAOS_SEED=N gives every test N (to repeat a failed run)."""
    fresh = request.node.get_closest_marker("random_seed") is not None
    value = seed_from_env(None if fresh else FIXED_SEED)
    print(f"chaos seed={value} (CHAOS_SEED={value} repeats this run)")
    return value


MakeSite = Callable[..., ChaosSite]


@pytest.fixture
def make_site(tmp_path: Path, seed: int) -> Iterator[MakeSite]:
    made: list[ChaosSite] = []

    def make(*, collector_disk_mb: int | None = None, agent_disk_mb: int | None = None,
             clock: bool = False) -> ChaosSite:
        if clock:
            require_tool("faketime")
            require(libfaketime() is not None, "libfaketime is not installed (package faketime)")
        try:
            site = ChaosSite(tmp_path, seed, collector_disk_mb=collector_disk_mb,
                             agent_disk_mb=agent_disk_mb)
        except MountRefused as exc:
            require(False, str(exc))
            raise
        made.append(site)
        if clock:
            lib = libfaketime()
            assert site.agent is not None and lib is not None
            site.agent.clock = Clock(tmp_path / "clock", lib)
        site.agent.start()  # type: ignore[union-attr]
        site.start_writer()
        return site

    try:
        yield make
    finally:
        for site in made:
            site.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "random_seed: a chaos test drawing a fresh seed each run")
