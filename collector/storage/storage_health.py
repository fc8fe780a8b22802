"""Whether the collector can write its database: for the console's banner and the notices.

A failed commit (a full disk, a read-only file system) opens an *outage*; the next commit that
succeeds closes it. Listeners hear both, on the writer thread, so they only queue work: the
notifier sends its email/webhook at once (a notice needs no write), and the incident runtime
records the outage as a candidate once writing works again (a candidate is itself a write).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from collector.storage.store import now_ms

log = logging.getLogger(__name__)


@dataclass
class Outage:
    why: str  # storage_fault's words: "the collector's disk is full"
    since_ms: int
    failed_commits: int = 1
    ended_ms: int | None = None


Listener = Callable[[Outage], None]  # outage.ended_ms is None when it starts


class StorageHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outage: Outage | None = None
        self.listeners: list[Listener] = []

    @property
    def outage(self) -> Outage | None:
        """The outage now, if any (read by the console's pages)."""
        return self._outage

    def failed(self, why: str) -> None:
        with self._lock:
            if self._outage is not None:
                self._outage.failed_commits += 1
                return
            self._outage = started = Outage(why, now_ms())
        log.error("collector.storage_down why=%r", why)
        self._tell(started)

    def wrote(self) -> None:
        if self._outage is None:  # the usual case: one attribute read per commit
            return
        with self._lock:
            ended, self._outage = self._outage, None
        if ended is None:
            return
        ended.ended_ms = now_ms()
        log.warning("collector.storage_back why=%r minutes=%d failed_commits=%d", ended.why,
                    (ended.ended_ms - ended.since_ms) // 60_000, ended.failed_commits)  # fmt: skip
        self._tell(ended)

    def _tell(self, outage: Outage) -> None:
        for listener in list(self.listeners):
            try:
                listener(outage)
            except Exception:
                log.exception("collector.storage_listener_failed")
