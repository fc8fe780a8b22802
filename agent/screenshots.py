"""Screenshot evidence, the agent's side: a detection's window captured, sealed, kept, and the
event sent with the image's hash.

    keyboard session thread                    "screenshots" worker thread
    sink(event, profile, window, screen)
      └─ wanted? ── no ─▶ emit(event) at once
           └─ yes ─▶ queue (bounded) ────────▶ event_id given now, then a capture thread,
                                               waited for at most wait_s (2 s)
                                               ─▶ seal to policy.evidence_key (protos/evidence.py)
                                               ─▶ EvidenceStore (budget_mb; oldest go)
                                               ─▶ event.screenshot_sha256 ─▶ emit(event)

Wanted: the policy's `screenshots.min_severity(profile, category)` is set and at or below the
event's severity; never the staff profile, never grooming/pornography/illegal (schema.py says
so; checked again here), never a password window (the helper's flag, and the title checked
again here), and only with the collector's evidence key. The keystroke path never waits: the
session thread only queues. Whatever happens to the picture, the event is emitted; a picture
that could not be taken or kept is counted and reported in one SCREENSHOTS_DROPPED status per
heartbeat (`flush`). A policy that wants screenshots with no evidence key published by the
collector is said once in the log and once in a status.

The event is emitted from the worker thread, so a screenshotted detection may reach the outbox
up to wait_s after a later detection without one; both keep the time they were seen.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from agent.evidence_store import EvidenceFull, EvidenceStore
from agent.outbox_bound import new_event_id
from agent.policy import ActivePolicy
from agent.sensors.keyboard import is_password_window
from agent.sensors.keyboard_keys import WindowInfo
from agent.sensors.screen import CaptureError, capture_window
from protos import events_pb2
from protos.evidence import EvidenceError, digest, seal
from rules.schema import NEVER_SCREENSHOT, STAFF_PROFILE

log = logging.getLogger(__name__)

Emit = Callable[[events_pb2.Event], object]
Capture = Callable[[str, int, int, str], "bytes | None"]
WAIT_S = 2.0  # the longest a detection's event waits for its picture
QUEUE = 8  # detections waiting for a capture; past it they go without one (counted)


@dataclass(frozen=True)
class Screen:
    """Where a session's windows are: its X display and the cookie file to reach it."""

    display: str = ""
    xauthority: str = ""


@dataclass
class _Job:
    event: events_pb2.Event
    window: WindowInfo
    screen: Screen


class Screenshotter:
    def __init__(self, store: EvidenceStore, agent_id: str, policy: Callable[[], ActivePolicy],
                 emit: Emit, status: Emit, capture: Capture = capture_window,
                 wait_s: float = WAIT_S,
                 on_kept: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.store = store
        self._agent_id = agent_id
        self._policy = policy
        self._emit = emit
        self._status = status  # straight to the outbox: the rate cap is for detections
        self._capture = capture
        self._wait_s = wait_s
        self._on_kept = on_kept or (lambda: None)
        self._queue: queue.Queue[_Job | None] = queue.Queue(QUEUE)
        self._lock = threading.Lock()
        self._dropped: Counter[str] = Counter()  # why, since the last flush
        self._stuck: threading.Thread | None = None  # a capture still running past wait_s
        self._said_no_key = False
        self.kept = 0  # counted for tests and benchmarks

    # -- the session thread ---------------------------------------------------------------

    def submit(self, event: events_pb2.Event, profile: str, window: WindowInfo,
               screen: Screen) -> None:  # fmt: skip
        """Called where the event would have been emitted; never blocks."""
        if not self._wanted(event, profile, window):
            self._emit(event)
            return
        try:
            self._queue.put_nowait(_Job(event, window, screen))
        except queue.Full:
            self._count("too many detections at once")
            self._emit(event)

    def _wanted(self, event: events_pb2.Event, profile: str, window: WindowInfo) -> bool:
        if event.WhichOneof("payload") != "keyword" or not window.window_id:
            return False
        category = event.keyword.category
        if profile == STAFF_PROFILE or category in NEVER_SCREENSHOT:
            return False  # the loader refuses such rules; a policy bug must not capture them
        if window.password or is_password_window(window.app, window.title):
            return False
        active = self._policy()
        shots = active.policy.screenshots
        least = shots.min_severity(profile, category) if shots is not None else None
        if least is None or event.severity < least:
            return False
        if not active.policy.evidence_key:
            self._no_key()
            return False
        self._said_no_key = False
        return True

    def _no_key(self) -> None:
        if self._said_no_key:
            return
        self._said_no_key = True
        detail = ("the policy asks for screenshots but the collector has published no evidence "
                  "key; none are taken until it does")  # fmt: skip
        log.warning("screenshots.no_evidence_key: %s", detail)
        self._status(events_pb2.Event(status=events_pb2.AgentStatus(
            kind=events_pb2.AgentStatus.SCREENSHOTS_DROPPED, count=1, detail=detail)))

    # -- the worker thread ----------------------------------------------------------------

    def run(self) -> None:
        """Take queued captures until stop() (then emit what still waits, without pictures)."""
        while (job := self._queue.get()) is not None:
            self.handle(job)
        while True:
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                return
            if left is not None:
                self._emit(left.event)

    def stop(self) -> None:
        while True:
            try:
                self._queue.put(None, timeout=0.1)
                return
            except queue.Full:
                continue

    def handle(self, job: _Job) -> None:
        event = job.event
        event.event_id = event.event_id or new_event_id()  # the picture is sealed to it
        try:
            self._attach(event, job)
        except Exception:  # the event must go whatever happened to its picture
            log.exception("screenshots.failed event_id=%s", event.event_id)
            self._count("an unexpected error")
        kept = self._emit(event)
        if kept is None and event.screenshot_sha256:  # the rate cap held the event back
            self.store.remove_event(event.event_id)
            log.info("screenshots.discarded event_id=%s reason=event_coalesced", event.event_id)

    def _attach(self, event: events_pb2.Event, job: _Job) -> None:
        active = self._policy()
        shots = active.policy.screenshots
        key = active.policy.evidence_key
        if shots is None or not key:
            self._count("screenshots switched off before the capture")
            return
        image = self._take(job.screen, job.window.window_id, shots.max_width)
        if image is None:
            return
        try:
            sealed = seal(key, image, self._agent_id, event.event_id)
        except EvidenceError as exc:
            self._count(f"cannot seal: {exc}")
            return
        try:
            dropped = self.store.put(event.event_id, sealed, shots.budget_mb)
        except EvidenceFull:
            self._count("the PC's disk is full")
            return
        except ValueError:
            self._count("bigger than the whole screenshot budget")
            return
        if dropped:
            self._count("budget full: the oldest waiting screenshot was dropped", dropped)
        event.screenshot_sha256 = digest(sealed)
        self.kept += 1
        log.info("screenshots.kept event_id=%s bytes=%d", event.event_id, len(sealed))
        self._on_kept()

    def _take(self, screen: Screen, window_id: int, max_width: int) -> bytes | None:
        if self._stuck is not None and self._stuck.is_alive():
            self._count("an earlier capture is still stuck")
            return None
        result: list[bytes | None] = []
        failure: list[str] = []

        def capture() -> None:
            try:
                result.append(self._capture(screen.display, window_id, max_width,
                                            screen.xauthority))  # fmt: skip
            except CaptureError as exc:
                failure.append(str(exc))
            except Exception as exc:
                log.exception("screenshots.capture_crashed")
                failure.append(type(exc).__name__)

        worker = threading.Thread(target=capture, name="screenshot-capture", daemon=True)
        worker.start()
        worker.join(self._wait_s)
        if worker.is_alive():
            self._stuck = worker
            self._count(f"capture slower than {self._wait_s:g} s")
            return None
        if failure:
            self._count(f"capture failed: {failure[0]}")
            return None
        if not result or result[0] is None:
            self._count("the window had gone")
            return None
        return result[0]

    # -- counting -------------------------------------------------------------------------

    def _count(self, why: str, n: int = 1) -> None:
        with self._lock:
            self._dropped[why] += n
        log.warning("screenshots.dropped count=%d reason=%s", n, why)

    def flush(self) -> events_pb2.Event | None:
        """One status for the screenshots not taken or not kept since the last flush."""
        with self._lock:
            dropped, self._dropped = self._dropped, Counter()
        if not dropped:
            return None
        detail = "; ".join(f"{why}: {n}" for why, n in dropped.most_common())
        event = events_pb2.Event(status=events_pb2.AgentStatus(
            kind=events_pb2.AgentStatus.SCREENSHOTS_DROPPED, count=sum(dropped.values()),
            detail=detail[:500]))  # fmt: skip
        self._status(event)
        return event
