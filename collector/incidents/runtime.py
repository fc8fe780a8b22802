"""The incident engine inside a running collector: the after-commit hook, the periodic check
for silent agents, and the notifier for severe candidates."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from collector.console.config import ConsoleConfig
from collector.incidents import config, coverage
from collector.incidents.engine import Engine
from collector.ingest import Ingestor
from collector.notify import Notifier

log = logging.getLogger(__name__)


class IncidentRuntime:
    def __init__(self, ingestor: Ingestor, cfg: ConsoleConfig) -> None:
        self.ingestor = ingestor
        self.cfg = cfg
        self.rules = config.load(cfg.rules_dir)
        self.notifier = Notifier(cfg.notify)
        self.engine = Engine(self.rules, notify=self.notifier)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.notifier.start()
        self.ingestor.after_commit.append(self.engine.on_commit)
        self._task = asyncio.get_running_loop().create_task(self._checks())
        log.info("incidents.started rules=%r", self.rules.source)

    async def check_silent(self) -> list[int]:
        return await asyncio.wrap_future(
            self.ingestor.call(lambda s: coverage.silent_agents(self.engine, s))
        )

    async def rerun(self) -> dict[str, int]:
        return await asyncio.wrap_future(
            self.ingestor.call(lambda s: coverage.rerun(self.engine, s))
        )

    async def _checks(self) -> None:
        while True:
            try:
                await self.check_silent()
            except Exception:
                log.exception("incidents.silent_check_failed")
            await asyncio.sleep(self.cfg.silent_check_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.engine.on_commit in self.ingestor.after_commit:
            self.ingestor.after_commit.remove(self.engine.on_commit)

    def close(self) -> None:
        """After the writer has stopped: send what is queued, then stop the notifier."""
        self.notifier.stop()
