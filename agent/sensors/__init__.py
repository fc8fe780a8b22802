"""Sensors: what the agent watches (keyboard, browser history, USB). Each arrives in its own issue.

A sensor is a thin OS loop around a pure parser. It runs in its own thread: `run(emit)` blocks
until `stop()` is called from another thread. The list of sensors the service starts is
`agent/sensors/registry.py`, explicitly, one line per sensor.

`emit` takes a finished Event for now. When the detector lands, sensors will emit in-process
observations to it instead, and only the detector will make Events (raw typed text must never
reach the outbox).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from protos import events_pb2

Emit = Callable[[events_pb2.Event], object]


class Sensor(Protocol):
    name: str

    def run(self, emit: Emit) -> None:
        """Watch and emit until stop() is called; return then. Raise only on a real fault."""
        ...

    def stop(self) -> None:
        """Ask run() to return soon. Called from another thread; must not block for long."""
        ...
