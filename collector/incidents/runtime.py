"""The incident engine inside a running collector: the after-commit hook, the periodic checks
(silent agents; the daily retention purge), and the notifier for severe candidates."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from collector import policy
from collector.console.config import ConsoleConfig
from collector.incidents import config, coverage
from collector.incidents.concern_split import split_by_concern
from collector.incidents.engine import Engine
from collector.intake.ingest import Committed, Ingestor
from collector.integrity import anchors, audit, records
from collector.paths import DataDir
from collector.reporting.notify import Notifier
from collector.storage import retention
from collector.storage.storage_health import Outage
from collector.storage.store import Store, now_ms

log = logging.getLogger(__name__)


class IncidentRuntime:
    def __init__(self, ingestor: Ingestor, cfg: ConsoleConfig, data: DataDir) -> None:
        self.ingestor = ingestor
        self.cfg = cfg
        self.data = data
        self.rules, self._version = config.for_collector(data, cfg.rules_dir)
        self.notifier = Notifier(cfg.notify, checkpoint=lambda: _checkpoint_line(data))
        self.engine = Engine(self.rules, notify=self.notifier, notify_at=cfg.notify.min_severity,
                             record_key=audit.load_key(data))  # fmt: skip
        self._task: asyncio.Task[None] | None = None
        self._behind = False  # the hook failed: judge from the stored mark next time
        self.chain_problems: list[str] = []  # the audit/record chains lack what a checkpoint saw
        self._witnessed: dict[str, tuple[int, list[str]]] = {}  # agent -> (when, problems)
        self._last_found: list[str] = []
        ingestor.storage.listeners.append(self._storage_changed)

    def start(self) -> None:
        """Call before agents can connect: events stored but not judged when the collector
        last stopped are judged first, so no later commit moves the mark past them."""
        self.notifier.start()
        key = audit.load_key(self.data)
        adopted = self.ingestor.call(lambda store: records.adopt_missing(store, key)).result()
        if adopted:
            log.warning("records.adopted incidents=%d (made before incident records)", adopted)
        try:  # candidates made before one concern per candidate (issue 17)
            self.ingestor.call(lambda store: split_by_concern(self.engine, store)).result()
        except Exception:  # never keep the agents out; tried again at the next start
            log.exception("incidents.concern_split_failed")
        try:
            self.ingestor.call(lambda store: coverage.catch_up(self.engine, store)).result()
        except Exception:  # never keep the agents out: judge it with the first commit
            log.exception("incidents.catch_up_failed")
            self._behind = True
        self.ingestor.after_commit.append(self._on_commit)
        self.check_chains_now()
        self._task = asyncio.get_running_loop().create_task(self._checks())
        log.info("incidents.started rules=%r", self.rules.source)

    def _on_commit(self, store: Store, committed: Committed) -> None:
        try:
            self._refresh()
            if self._behind:  # from the mark: the failed commit's events, and this one's
                coverage.catch_up(self.engine, store)
                self._behind = False
            else:
                self.engine.on_commit(store, committed)
            if committed.tampering_agents:  # new tampering records become candidates
                coverage.tampering(self.engine, store)
        except Exception:
            self._behind = True
            raise  # the writer logs it; the events are stored and will be judged

    def _storage_changed(self, outage: Outage) -> None:
        """On the writer thread: alarm at once when writes start failing (no write needed);
        once they work again, say so and record the outage as a candidate."""
        if outage.ended_ms is None:
            self.notifier.alarm(
                "Safeguarding: the collector cannot store events",
                f"Since {_utc(outage.since_ms)} the safeguarding collector cannot write its "
                f"database: {outage.why}. Each PC keeps its events and sends them again once "
                "the collector can store them; nothing is lost while the PCs have room. Free "
                "space (or fix the disk) on the collector. The console says so until then.",
            )
            return
        self.notifier.alarm(
            "Safeguarding: the collector stores events again",
            f"The collector could not write its database from {_utc(outage.since_ms)} to "
            f"{_utc(outage.ended_ms)} ({outage.why}); it stores events again and the PCs are "
            "sending what they kept.",
        )
        self.ingestor.call(lambda store: coverage.storage_outage(self.engine, store, outage))

    def _refresh(self) -> None:
        """On the writer thread: judge events by the policy the agents run, from the moment
        a new one is published (a stat of the published file when nothing has changed)."""
        if policy.current_version(self.data) == self._version:
            return
        self.rules, self._version = config.for_collector(self.data, self.cfg.rules_dir)
        self.engine.rules = self.rules
        log.info("incidents.rules_reloaded rules=%r", self.rules.source)

    async def check_silent(self) -> list[int]:
        def check(store: Store) -> list[int]:
            self._refresh()
            return coverage.silent_agents(self.engine, store)

        return await asyncio.wrap_future(self.ingestor.call(check))

    async def rerun(self) -> dict[str, int]:
        return await asyncio.wrap_future(
            self.ingestor.call(lambda s: coverage.rerun(self.engine, s))
        )

    async def purge_if_due(self) -> dict[str, int] | None:
        key = audit.load_key(self.data)
        return await asyncio.wrap_future(
            self.ingestor.call(lambda s: retention.purge_if_due(s, audit.Audit(key)))
        )

    def witnessed(self, agent_id: str, problems: list[str]) -> None:
        """A PC handed back a checkpoint the chains no longer reach (collector/intake/server.py)."""
        for problem in problems:
            log.error("anchors.witness_disagrees agent=%s problem=%r", agent_id, problem)
        self._witnessed[agent_id] = (now_ms(), problems)
        self.chain_problems = self._problems(self._last_found)

    def _problems(self, found: list[str]) -> list[str]:
        """What the checkpoint beside the database says, and what PCs' kept copies say (until
        a restore is acknowledged after them)."""
        current = anchors.load(self.data)
        acknowledged = current.acknowledged_ms if current is not None else 0
        out = list(found)
        for agent_id, (at, problems) in sorted(self._witnessed.items()):
            if at > acknowledged:
                out += [f"PC {agent_id} kept a checkpoint that says: {p}" for p in problems]
        return out

    def check_chains_now(self) -> list[str]:
        """Hold the chains against the last checkpoint and write a new one if they hold (on
        the writer thread). A problem stays on every console page until it is acknowledged."""
        try:
            found = self.ingestor.call(lambda s: anchors.refresh(self.data, s.con)).result()
        except Exception:
            log.exception("anchors.check_failed")
            return self.chain_problems
        if found and found != self._last_found:
            for problem in found:
                log.error("anchors.chain_cut problem=%r", problem)
        self._last_found = found
        self.chain_problems = self._problems(found)
        return self.chain_problems

    async def _checks(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.check_chains_now)
            except Exception:
                log.exception("anchors.check_failed")
            try:
                await self.check_silent()
            except Exception:
                log.exception("incidents.silent_check_failed")
            try:
                await self.purge_if_due()
            except Exception:
                log.exception("retention.purge_failed")
            await asyncio.sleep(self.cfg.silent_check_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._on_commit in self.ingestor.after_commit:
            self.ingestor.after_commit.remove(self._on_commit)
        await asyncio.to_thread(self.check_chains_now)  # the last checkpoint, at stop

    def close(self) -> None:
        """After the writer has stopped: send what is queued, then stop the notifier (the
        chains' last checkpoint is written by `stop`, while the writer still runs)."""
        self.notifier.stop()


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _checkpoint_line(data: DataDir) -> str | None:
    checkpoint = anchors.load(data)
    return checkpoint.line() if checkpoint is not None else None
