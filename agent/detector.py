"""The keystroke detector: key tokens in, `KeywordDetection` events out.

    capture hook ─(enqueue only)─▶ queue ─▶ [helper ═ Unix socket ═▶] detector thread
        KeystrokeDetector.key(token): focus change / Enter / cursor move ─▶ Stream.reset()
                                      Backspace ─▶ Stream.backspace()
                                      a character ─▶ Stream.feed(ch) ─▶ Alerts
        alert_event(alert, window, account, policy) ─▶ Event(keyword=KeywordDetection)

This is the one place where an in-process observation (raw keys, held only in the Stream's
bounded history) becomes a protobuf Event, and only an Alert does: its capped context is the
only typed text that can leave. Nothing here logs typed text or context.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.sensors.keyboard_keys import BACKSPACE, DELETE, ENTER, RESET, SPECIAL, WindowInfo
from protos import events_pb2
from rules.compile import Compiled
from rules.match import Alert, Stream
from rules.schema import Policy

__all__ = ["BACKSPACE", "DELETE", "ENTER", "RESET", "SPECIAL", "WindowInfo"]

Sink = Callable[[Alert, WindowInfo], None]


class KeystrokeDetector:
    """One typing session (one desktop): a Stream, the window it types into, the policy.

    Not thread-safe: one thread feeds it. `compiled()` is asked per key and is cheap; when it
    returns a different matcher (a new policy, an exemption starting or ending) the text so
    far is settled under the old one and typing continues under the new one.
    """

    def __init__(self, compiled: Callable[[], Compiled | None], sink: Sink,
                 idle_reset_s: float = 30.0) -> None:  # fmt: skip
        self._source = compiled
        self._sink = sink
        self._idle_reset_s = idle_reset_s
        self._compiled: Compiled | None = None
        self._stream: Stream | None = None
        self._window = WindowInfo()
        self._last_key = 0.0
        self.keys = 0  # counted for health and benchmarks; never the keys themselves
        self.alerts = 0

    @property
    def window(self) -> WindowInfo:
        return self._window

    def focus(self, window: WindowInfo) -> None:
        """The active window changed: what was typed before belongs to the old one."""
        if window != self._window:
            self.settle()
            self._window = window

    def key(self, token: str) -> None:
        self.keys += 1
        if self._window.password:
            return  # never matched, never kept: a password prompt has focus
        now = time.monotonic()
        if self._stream is not None and now - self._last_key > self._idle_reset_s:
            self.settle()  # a long pause starts a new text
        self._last_key = now
        if token in (ENTER, RESET):
            self.settle()
        elif token == BACKSPACE:
            if self._stream is not None:
                self._deliver(self._stream.backspace())  # an erased alert still counts
        elif token == DELETE:
            if self._stream is not None:
                self._stream.delete()
        elif len(token) == 1:
            stream = self._current()
            if stream is not None:
                self._deliver(stream.feed(token))

    def settle(self) -> None:
        """Enter, focus change, idle, shutdown: report what is pending, forget the text."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._deliver(stream.reset())

    def _current(self) -> Stream | None:
        compiled = self._source()
        if compiled is not self._compiled:
            self.settle()
            self._compiled = compiled
        if self._stream is None and compiled is not None:
            self._stream = Stream(compiled)
        return self._stream

    def _deliver(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.alerts += 1
            self._sink(alert, self._window)


def severity_of(policy: Policy, category: str, score: int) -> int:
    """The first severity rule that fits (rules/lists/incidents.toml); 1 if none does."""
    for rule in policy.incidents.severities:
        if rule.category in (category, "*") and score >= rule.min_score:
            return rule.severity
    return 1


def alert_event(alert: Alert, window: WindowInfo, account: str, policy: Policy,
                source: str = "keyboard") -> events_pb2.Event:  # fmt: skip
    """The only way a typed-text Alert leaves the detector: its capped context and no more."""
    context = " ".join(alert.context.split()[-policy.context_words :])[-policy.context_chars :]
    return events_pb2.Event(
        observed_unix_ms=int(time.time() * 1000),
        severity=severity_of(policy, alert.category, alert.score),
        account=account,
        keyword=events_pb2.KeywordDetection(
            category=alert.category,
            list=f"keywords/{alert.category}",
            terms=list(alert.terms),
            score=alert.score,
            context=context,
            application=window.app[:200],
            window_title=window.title[:300],
            source=source,
            exemption=",".join(alert.exemptions),
        ),
    )
