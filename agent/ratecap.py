"""A per-agent rate cap on detections, with repeated matches coalesced and everything counted.

Between the sensors and the outbox, as osquery's watchdog and the UK monitoring products do, so
a pupil holding down a key or a looping page cannot flood the DSL or the collector:

- **coalesce**: the same account, category and terms (or URL rule) again within
  `coalesce_s` is not queued again; it is counted;
- **cap**: at most `per_minute` detections a minute (a token bucket, `burst` at once); past it a
  detection is dropped and counted, except severity >= `always_severity` (never capped);
- **record**: `flush()` (each heartbeat) queues one `AgentStatus(DROPPED)` saying how many were
  coalesced and dropped, by severity, so the DSL sees that something was held back.
USB decisions, heartbeats and status events pass untouched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from protos import events_pb2

log = logging.getLogger(__name__)

Emit = Callable[[events_pb2.Event], object]


@dataclass(frozen=True)
class RateConfig:
    per_minute: float = 30.0
    burst: float = 10.0
    coalesce_s: float = 60.0
    always_severity: int = 4  # grooming/extremism at their highest are never held back


def _key(event: events_pb2.Event) -> Hashable | None:
    kind = event.WhichOneof("payload")
    if kind == "keyword":
        k = event.keyword
        return ("keyword", event.account, k.category, tuple(sorted(k.terms)), k.exemption)
    if kind == "url":
        return ("url", event.account, event.url.category, event.url.rule)
    return None  # not a detection: never capped


class RateGate:
    def __init__(self, emit: Emit, config: RateConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._emit = emit
        self._cfg = config or RateConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[Hashable, float] = {}
        self._tokens = self._cfg.burst
        self._refilled = clock()
        self.coalesced: Counter[int] = Counter()  # by severity, since the last flush
        self.dropped: Counter[int] = Counter()
        self.total_coalesced = 0
        self.total_dropped = 0

    def __call__(self, event: events_pb2.Event) -> object:
        key = _key(event)
        if key is None:
            return self._emit(event)
        with self._lock:
            verdict = self._judge(key, event.severity)
        if verdict is None:
            return self._emit(event)
        log.info("detection.%s severity=%d", verdict, event.severity)
        return None

    def _judge(self, key: Hashable, severity: int) -> str | None:
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last < self._cfg.coalesce_s:
            self.coalesced[severity] += 1
            self.total_coalesced += 1
            return "coalesced"
        rate = self._cfg.per_minute / 60.0
        self._tokens = min(self._cfg.burst, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1 and severity < self._cfg.always_severity:
            self.dropped[severity] += 1
            self.total_dropped += 1
            return "dropped"
        self._tokens = max(0.0, self._tokens - 1)
        self._seen[key] = now
        if len(self._seen) > 4096:  # forget keys that can no longer coalesce anything
            horizon = now - self._cfg.coalesce_s
            self._seen = {k: t for k, t in self._seen.items() if t >= horizon}
        return None

    def flush(self) -> events_pb2.Event | None:
        """The counted record of what was held back since the last flush (None: nothing)."""
        with self._lock:
            coalesced, dropped = self.coalesced, self.dropped
            self.coalesced, self.dropped = Counter(), Counter()
        n_c, n_d = sum(coalesced.values()), sum(dropped.values())
        if not n_c and not n_d:
            return None
        by_severity = coalesced + dropped
        event = events_pb2.Event(
            status=events_pb2.AgentStatus(
                kind=events_pb2.AgentStatus.DROPPED,
                count=n_c + n_d,
                detail=f"rate cap: coalesced={n_c} dropped={n_d}",
                dropped_by_severity=dict(by_severity),
            )
        )
        self._emit(event)
        return event
