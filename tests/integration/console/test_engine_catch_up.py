"""Nothing stored goes unjudged: events committed while the engine could not run (it failed,
or the collector stopped between the commit and the candidates) are judged later."""

from __future__ import annotations

from typing import Any

import pytest

from collector.incidents import coverage
from collector.intake.ingest import Committed
from collector.storage.store import Store
from tests.integration.console.support import Agent, ConsoleHarness, keyword

pytestmark = pytest.mark.integration


def _accounts(console: ConsoleHarness) -> list[str]:
    return sorted(r["account"] for r in console.op("incidents", status="")["rows"])


def test_events_the_engine_failed_on_are_judged_with_the_next_commit(
    console: ConsoleHarness,
) -> None:
    agent = Agent.enrol(console)
    agent.ship(keyword("bullying", ["loser"], account="pupil.amy"))
    engine = console.running.incidents.engine
    real = engine.on_commit
    failures: list[int] = []

    def fails_once(store: Store, committed: Committed) -> Any:
        if not failures:
            failures.append(1)
            raise RuntimeError("the engine broke on this commit")
        return real(store, committed)

    engine.on_commit = fails_once  # type: ignore[method-assign]
    agent.ship(keyword("bullying", ["loser"], account="pupil.ben"))
    assert failures and _accounts(console) == ["pupil.amy"]  # stored, not yet judged
    agent.ship(keyword("bullying", ["loser"], account="pupil.cat"))
    assert _accounts(console) == ["pupil.amy", "pupil.ben", "pupil.cat"]


def test_events_stored_when_the_collector_stopped_are_judged_at_its_next_start(
    console: ConsoleHarness,
) -> None:
    agent = Agent.enrol(console)
    agent.ship(keyword("bullying", ["loser"], account="pupil.amy"))
    # The collector stops between committing a batch and judging it: here the engine's hook
    # is taken away, the batch committed, and the collector stopped.
    incidents = console.running.incidents
    console.running.ingestor.after_commit.remove(incidents._on_commit)
    agent.ship(keyword("self_harm", ["cut myself"], account="pupil.ben"))
    assert _accounts(console) == ["pupil.amy"]
    console.stop()
    console.start()
    assert _accounts(console) == ["pupil.amy", "pupil.ben"]
    assert console.with_store(lambda s: coverage.catch_up(console.running.incidents.engine, s)) == 0
