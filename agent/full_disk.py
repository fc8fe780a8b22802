"""What the service does while the PC's disk is full: it starts all the same, and keeps events.

- `open_when_space`: a PC that boots with a full disk cannot create or open the outbox
  (SQLite needs room for its -wal and -shm). The service waits for space, logging once, instead
  of exiting: a service manager restarting it in a loop would not make room either.
- `SpillingPut`: once running, an event the outbox cannot take (SQLITE_FULL) waits in memory,
  in order, and is written before the next one as soon as space returns (each put and each
  heartbeat try). The wait is bounded (`limit` events): past it the oldest go and are counted,
  and the count is queued as an AgentStatus(DROPPED) when space returns. Memory is all there is
  on a full disk: a power cut meanwhile loses what waits, and a stop logs how many it was.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from agent.outbox_bound import new_event_id
from protos import events_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_LIMIT = 2000  # events; a detection is well under 1 KB, so at most a few MB
RETRY_S = 5.0


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def open_when_space(opener: Callable[[], T], stop: threading.Event,
                    retry_s: float = RETRY_S) -> T | None:  # fmt: skip
    """opener(), retried while the disk is full; None if `stop` is set meanwhile."""
    since: float | None = None
    while True:
        try:
            opened = opener()
        except (sqlite3.Error, OSError) as exc:
            if not is_disk_full(exc):
                raise
            if since is None:
                since = time.monotonic()
                log.error("outbox.open_waiting detail=%s: the PC's disk is full; the agent starts "
                          "when space is freed (retrying every %gs)", exc, retry_s)  # fmt: skip
            if stop.wait(retry_s):
                return None
            continue
        if since is not None:
            log.warning("outbox.opened waited_s=%.0f: space was freed", time.monotonic() - since)
        return opened


Put = Callable[[events_pb2.Event], str]


class SpillingPut:
    """outbox.put, with events the full disk refused held in memory until it takes them."""

    def __init__(self, put: Put, limit: int = DEFAULT_LIMIT) -> None:
        self._put = put
        self._limit = limit
        self._lock = threading.Lock()
        self._waiting: deque[events_pb2.Event] = deque()
        self._lost = 0  # dropped past the limit since the last report

    def __call__(self, event: events_pb2.Event) -> str:
        # Named and timed now, as Outbox.put would: a held event keeps when it was seen.
        if not event.event_id:
            event.event_id = new_event_id()
        if not event.observed_unix_ms:
            event.observed_unix_ms = time.time_ns() // 1_000_000
        with self._lock:
            if self._drain_locked():
                try:
                    return self._put(event)
                except sqlite3.OperationalError as exc:
                    if not is_disk_full(exc):
                        raise
            self._hold(event)
            return event.event_id

    def drain(self) -> int:
        """Write what waits (each heartbeat); returns how many still wait."""
        with self._lock:
            self._drain_locked()
            return len(self._waiting)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _hold(self, event: events_pb2.Event) -> None:
        if not self._waiting:
            log.error("outbox.events_waiting_in_memory: the PC's disk is full; events wait in "
                      "memory (at most %d) until space is freed", self._limit)  # fmt: skip
        self._waiting.append(event)
        if len(self._waiting) > self._limit:
            self._waiting.popleft()
            self._lost += 1

    def _drain_locked(self) -> bool:
        """True when nothing waits any more (so a new event may go straight in)."""
        written = 0
        while self._waiting:
            try:
                self._put(self._waiting[0])
            except sqlite3.OperationalError as exc:
                if not is_disk_full(exc):
                    raise
                return False
            self._waiting.popleft()
            written += 1
        if written:
            log.warning("outbox.events_written_from_memory count=%d lost=%d", written, self._lost)
        if self._lost:
            lost, self._lost = self._lost, 0
            try:
                self._put(_lost_record(lost, self._limit))
            except sqlite3.OperationalError as exc:
                if not is_disk_full(exc):
                    raise
                self._lost = lost
                return False
        return True


def _lost_record(lost: int, limit: int) -> events_pb2.Event:
    return events_pb2.Event(
        status=events_pb2.AgentStatus(
            kind=events_pb2.AgentStatus.DROPPED,
            count=lost,
            detail=f"disk full: {lost} event(s) past the {limit} kept in memory were lost",
        )
    )
