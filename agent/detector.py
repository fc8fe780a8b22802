"""The keystroke detector: key tokens in, `KeywordDetection` events out.

    capture hook ─(enqueue only)─▶ queue ─▶ [helper ═ Unix socket ═▶] detector thread
        KeystrokeDetector.key(token): focus change / Enter / cursor move ─▶ Stream.reset()
                                      Backspace ─▶ Stream.backspace()
                                      a character ─▶ Stream.feed(ch) ─▶ Alerts
        ... and when a text is finished (Enter, focus change, idle) or typing pauses
        (tick): the semantic stage judges its sentences ─▶ SemanticAlerts
        alert_event(alert, window, account, policy) ─▶ Event(keyword=KeywordDetection)

This is the one place where an in-process observation (raw keys, held only in the Stream's
bounded history) becomes a protobuf Event, and only an Alert does: its capped context is the
only typed text that can leave. Nothing here logs typed text or context.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.sensors.keyboard_keys import BACKSPACE, DELETE, ENTER, RESET, SPECIAL, WindowInfo
from protos import event_fields as fields
from protos import events_pb2
from protos.event_fields import clean
from rules.compile import Compiled
from rules.match import Alert, Stream
from rules.schema import Policy
from rules.semantic import SemanticAlert, SemanticJudge, sentences

__all__ = ["BACKSPACE", "DELETE", "ENTER", "RESET", "SPECIAL", "WindowInfo"]

Sink = Callable[[Alert | SemanticAlert, WindowInfo], None]
PAUSE_S = 3.0  # typing stopped this long: the sentences so far are judged (not forgotten)


class KeystrokeDetector:
    """One typing session (one desktop): a Stream, the window it types into, the policy.

    Not thread-safe: one thread feeds it. `compiled()` is asked per key and is cheap; when it
    returns a different matcher (a new policy, an exemption starting or ending) the text so
    far is settled under the old one and typing continues under the new one.
    """

    def __init__(self, compiled: Callable[[], Compiled | None], sink: Sink,
                 idle_reset_s: float = 30.0,
                 semantic: Callable[[], SemanticJudge | None] | None = None,
                 pause_s: float = PAUSE_S) -> None:  # fmt: skip
        self._source = compiled
        self._sink = sink
        self._idle_reset_s = idle_reset_s
        self._semantic = semantic
        self._pause_s = pause_s
        self._compiled: Compiled | None = None
        self._stream: Stream | None = None
        self._window = WindowInfo()
        self._last_key = 0.0
        self._judged: set[str] = set()  # sentences of the current text already judged
        self._alerted: set[str] = set()  # categories the current text has alerted in
        self._paused = False
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
        self._paused = False
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

    def tick(self, now: float | None = None) -> None:
        """Called about once a second by the thread that feeds keys: a pause in typing
        has the semantic stage judge the sentences so far; a long one settles the text. A
        new policy is taken up here too, not at the next key: the old one's matcher (tens
        of MB with the shipped lists) is let go while the pupil is not typing."""
        if self._compiled is not None and self._source() is not self._compiled:
            self.settle()  # what was typed is settled under the policy it was typed under
            self._compiled = None
        if self._stream is None:
            return
        now = time.monotonic() if now is None else now
        idle = now - self._last_key
        if idle > self._idle_reset_s:
            self.settle()
        elif idle >= self._pause_s and not self._paused:
            self._paused = True
            self._judge(self._stream.text())

    def let_go(self) -> None:
        """Settle the text under the matcher it was typed under and hold that matcher no
        more: called before a new one is read in, so its space is free for it."""
        self.settle()
        self._compiled = None

    def settle(self) -> None:
        """Enter, focus change, idle, shutdown: report what is pending, forget the text."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            text = stream.text()
            self._deliver(stream.reset())
            self._judge(text)
        self._judged.clear()
        self._alerted.clear()

    def _judge(self, text: str) -> None:
        """The semantic stage on the sentences of ``text`` not judged before; a category
        the patterns (or an earlier sentence) already alerted in this text is not repeated."""
        judge = self._semantic() if self._semantic is not None else None
        if judge is None or not text.strip():
            return
        fresh = {text[a:b].strip() for a, b in sentences(text, judge.semantic.min_words)}
        if not fresh - self._judged:
            return
        before = frozenset(self._judged)  # judged at a pause: still the next one's context
        self._judged |= fresh
        self._deliver(judge.judge(text, skip=before))

    def _current(self) -> Stream | None:
        compiled = self._source()
        if compiled is not self._compiled:
            self.settle()
            self._compiled = compiled
        if self._stream is None and compiled is not None:
            self._stream = Stream(compiled)
        return self._stream

    def _deliver(self, alerts: list[Alert] | list[SemanticAlert]) -> None:
        for alert in alerts:
            if isinstance(alert, SemanticAlert) and alert.category in self._alerted:
                continue  # the patterns (or an earlier sentence) said it already
            self._alerted.add(alert.category)
            self.alerts += 1
            self._sink(alert, self._window)


def severity_of(policy: Policy, category: str, score: int) -> int:
    """The first severity rule that fits (rules/lists/incidents.toml); 1 if none does."""
    for rule in policy.incidents.severities:
        if rule.category in (category, "*") and score >= rule.min_score:
            return rule.severity
    return 1


def semantic_severity(policy: Policy, category: str) -> int:
    """A semantic alert's severity: the policy's own for the category, else the incident
    rules' first one at score 0."""
    sem = policy.semantic
    own = dict(sem.severities).get(category) if sem is not None else None
    return own if own is not None else severity_of(policy, category, 0)


def alert_event(alert: Alert | SemanticAlert, window: WindowInfo, account: str, policy: Policy,
                source: str = "keyboard") -> events_pb2.Event:  # fmt: skip
    """The only way a typed-text alert leaves the detector: its capped context and no more."""
    context = " ".join(alert.context.split()[-policy.context_words :])[-policy.context_chars :]
    # Free text as the collector accepts it (protos/event_fields.py): a pupil can put a
    # control character in a window title; it must not make the PC look tampered with.
    detection = events_pb2.KeywordDetection(
        category=alert.category,
        score=alert.score,
        context=clean(context, fields.CONTEXT),
        application=clean(window.app, fields.APPLICATION),
        window_title=clean(window.title, fields.WINDOW_TITLE),
        source=source,
        exemption=",".join(alert.exemptions),
    )
    if isinstance(alert, SemanticAlert):
        detection.list = f"semantic/{alert.category}"
        detection.terms.append(clean(alert.exemplar_text, 200))  # a sentence, not a pattern
        detection.exemplar = alert.exemplar
        detection.similarity = alert.similarity
        detection.semantic_part = alert.part
        severity = semantic_severity(policy, alert.category)
    else:
        detection.list = f"keywords/{alert.category}"
        detection.terms.extend(clean(t, fields.TERM) for t in alert.terms[: fields.TERMS])
        severity = severity_of(policy, alert.category, alert.score)
    return events_pb2.Event(observed_unix_ms=int(time.time() * 1000), severity=severity,
                            account=account, keyword=detection)  # fmt: skip
