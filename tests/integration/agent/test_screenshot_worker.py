"""The screenshot worker's limits, with a capture function standing in for the screen (the
real X capture is tested in tests/e2e/agent/test_screenshots.py): staff and the never-captured
categories are refused at capture time even if a policy slipped past the loader; the budget
drops the oldest pictures and counts them; a capture that hangs does not hold the event."""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.evidence_store import EvidenceStore
from agent.policy import ActivePolicy
from agent.screenshots import Screen, Screenshotter
from agent.sensors.keyboard_keys import WindowInfo
from protos import events_pb2
from protos.evidence import public_key_of
from rules.load import load_policy
from rules.schema import Policy, ScreenshotRule, Screenshots

pytestmark = pytest.mark.integration

WINDOW = WindowInfo("chat-app", "chat", False, 0x400001)
SCREEN = Screen(":99")


@functools.cache
def shipped() -> Policy:
    return load_policy()


def policy(*rules: ScreenshotRule, budget_mb: int = 1) -> ActivePolicy:
    # Built directly, not by the loader: the loader refuses staff and grooming rules, and this
    # is the check behind it.
    shots = Screenshots(enabled=True, rules=rules, max_width=640, budget_mb=budget_mb)
    base = shipped()
    key = public_key_of(X25519PrivateKey.generate())
    return ActivePolicy(1, dataclasses.replace(base, screenshots=shots, evidence_key=key))


def detection(category: str, severity: int = 5) -> events_pb2.Event:
    return events_pb2.Event(severity=severity, account="pupil",
                            keyword=events_pb2.KeywordDetection(category=category))  # fmt: skip


class Worker:
    def __init__(self, tmp: Path, active: ActivePolicy,
                 capture: Callable[[str, int, int, str], bytes | None]) -> None:  # fmt: skip
        self.emitted: list[events_pb2.Event] = []
        self.statuses: list[events_pb2.Event] = []
        self.done = threading.Semaphore(0)
        self.store = EvidenceStore(tmp / "evidence")
        self.shots = Screenshotter(self.store, "agent-1", lambda: active, self._emit,
                                   self.statuses.append, capture=capture, wait_s=0.5)  # fmt: skip
        self.thread = threading.Thread(target=self.shots.run, daemon=True)
        self.thread.start()

    def _emit(self, event: events_pb2.Event) -> str:
        self.emitted.append(event)
        self.done.release()
        return event.event_id

    def submit(self, event: events_pb2.Event, profile: str = "ks2") -> events_pb2.Event:
        self.shots.submit(event, profile, WINDOW, SCREEN)
        assert self.done.acquire(timeout=60), "the event was not emitted"
        return self.emitted[-1]

    def close(self) -> None:
        self.shots.stop()
        self.thread.join(10)


@pytest.fixture
def worker_for(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    made: list[Worker] = []

    def make(active: ActivePolicy, capture: Callable[[str, int, int, str], bytes | None]
             = lambda *a: os.urandom(300_000)) -> Worker:  # fmt: skip
        made.append(Worker(tmp_path, active, capture))
        return made[-1]

    yield make
    for w in made:
        w.close()


EVERYTHING = ("violence", "suicide", "grooming", "pornography", "illegal")


@pytest.mark.parametrize("category", ["grooming", "pornography", "illegal"])
def test_never_captured_categories_are_refused_at_capture_time(
    worker_for: Callable[..., Worker], category: str
) -> None:
    w = worker_for(policy(ScreenshotRule("ks2", EVERYTHING, 1)))
    assert not w.submit(detection(category)).screenshot_sha256
    assert w.store.waiting() == []
    assert w.submit(detection("violence")).screenshot_sha256  # the same policy captures this


def test_a_staff_login_is_never_captured(worker_for: Callable[..., Worker]) -> None:
    w = worker_for(policy(ScreenshotRule("staff", EVERYTHING, 1)))
    assert not w.submit(detection("violence"), profile="staff").screenshot_sha256
    assert w.store.waiting() == [] and w.shots.flush() is None


def test_a_flagged_password_window_is_never_captured(worker_for: Callable[..., Worker]) -> None:
    w = worker_for(policy(ScreenshotRule("ks2", ("violence",), 1)))
    w.shots.submit(detection("violence"), "ks2", WINDOW._replace(password=True),
                   SCREEN)  # fmt: skip
    assert w.done.acquire(timeout=60)
    assert not w.emitted[-1].screenshot_sha256 and w.store.waiting() == []


def test_past_the_budget_the_oldest_pictures_go_and_are_counted(
    worker_for: Callable[..., Worker],
) -> None:
    # 300 kB of noise does not compress: three fit in 1 MB, the fourth pushes the first out
    w = worker_for(policy(ScreenshotRule("ks2", ("violence",), 1), budget_mb=1))
    events = [w.submit(detection("violence")) for _ in range(4)]
    assert all(e.screenshot_sha256 for e in events)
    kept = [item.event_id for item in w.store.waiting()]
    assert kept == [e.event_id for e in events[1:]]
    assert w.store.total_bytes() <= 1024 * 1024
    dropped = w.shots.flush()
    assert dropped is not None and dropped.status.count == 1
    assert dropped.status.kind == events_pb2.AgentStatus.SCREENSHOTS_DROPPED
    assert "budget full" in dropped.status.detail
    assert w.statuses == [dropped] and w.shots.flush() is None  # counted once


def test_a_capture_that_hangs_does_not_hold_the_event_and_is_counted(
    worker_for: Callable[..., Worker],
) -> None:
    release = threading.Event()

    def hangs(*_: object) -> bytes:
        release.wait(120)
        return b"late"

    w = worker_for(policy(ScreenshotRule("ks2", ("violence",), 1)), capture=hangs)
    try:
        first = w.submit(detection("violence"))  # emitted while the capture still hangs
        assert not first.screenshot_sha256 and not release.is_set()
        second = w.submit(detection("violence"))  # not queued behind the stuck one
        assert not second.screenshot_sha256
        dropped = w.shots.flush()
        assert dropped is not None and dropped.status.count == 2
        assert "slower than" in dropped.status.detail and "still stuck" in dropped.status.detail
    finally:
        release.set()
    assert w.store.waiting() == []


def test_an_event_the_rate_cap_holds_back_leaves_no_picture_behind(tmp_path: Path) -> None:
    active = policy(ScreenshotRule("ks2", ("violence",), 1))
    seen = threading.Semaphore(0)

    def held_back(event: events_pb2.Event) -> None:
        seen.release()  # as RateGate answers a coalesced detection: None

    store = EvidenceStore(tmp_path / "evidence")
    shots = Screenshotter(store, "agent-1", lambda: active, held_back, lambda e: None,
                          capture=lambda *a: b"picture")  # fmt: skip
    runner = threading.Thread(target=shots.run, daemon=True)
    runner.start()
    shots.submit(detection("violence"), "ks2", WINDOW, SCREEN)
    assert seen.acquire(timeout=60)
    shots.stop()
    runner.join(10)
    assert store.waiting() == [] and shots.kept == 1
