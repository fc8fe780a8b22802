"""Sensors: what the agent watches (keyboard, browser history, USB). Each arrives in its own issue.

A sensor is a thin OS loop around a pure parser. It runs in its own thread: `run(emit)` blocks
until `stop()` is called from another thread. The list of sensors the service starts is
`agent/sensors/registry.py`, explicitly, one line per sensor.

A sensor gets a SensorContext: `emit` takes a finished Event (already reduced to a detection:
raw typed text must never reach it), and `policy()` returns the policy in force, which can
change while the sensor runs (look it up per observation, do not keep it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:  # kept out of the per-login keyboard helper, which imports this package
    from agent.notice import NoticeLog
    from agent.policy import ActivePolicy
    from agent.screenshots import Screenshotter
    from protos import events_pb2
    from rules.semantic import SemanticJudge

Emit = Callable[["events_pb2.Event"], object]


# Named tuples, not dataclasses: the helper imports this package, and ``dataclasses`` (with
# ``inspect`` and ``ast``) would cost it 1 MB.
class SensorContext(NamedTuple):
    emit: Emit
    policy: Callable[[], ActivePolicy]
    state_dir: Path | None = None  # the agent's state folder (root only), for sensor cursors
    # The semantic stage's judge for a profile; None where the stage is off or not ready.
    semantic: Callable[[str], SemanticJudge | None] | None = None
    # Where the keyboard broker records each showing of the monitoring notice (the heartbeat
    # reads it); None: not recorded.
    notices: NoticeLog | None = None
    # Screenshot evidence for keyboard detections (agent/screenshots.py); None: never taken.
    screenshots: Screenshotter | None = None


class HelperProcess(NamedTuple):
    """A process outside the service that a sensor depends on (the keyboard's per-login
    helper), for the watchdog: it measures `pid` and calls `restart(reason)` when the process
    stays over its memory limit. How the process comes back is the sensor's business."""

    pid: int
    account: str
    what: str  # "keyboard helper"
    restart: Callable[[str], None]


class SensorUnavailable(Exception):
    """Raised by run() when the sensor cannot work here (no display, no udev access, Wayland).
    The service reports it as "unavailable" with this reason and does not restart it."""


class Sensor(Protocol):
    name: str

    def run(self, ctx: SensorContext) -> None:
        """Watch and emit until stop() is called; return then. Raise only on a real fault."""
        ...

    def stop(self) -> None:
        """Ask run() to return soon. Called from another thread; must not block for long."""
        ...

# Optional, looked up with getattr by the supervisor: `status() -> (state, detail)` for the
# heartbeat, and `helpers() -> list[HelperProcess]` for the watchdog. Threads a sensor starts
# itself are named "<sensor name>-..." (e.g. "keyboard-session") so their CPU counts as its own.
