"""The sensors the service starts, in order. Empty until the sensor issues land.

Each entry is a factory, so platform modules are imported only when that sensor is built
(e.g. `lambda: __import__("agent.sensors.usb_linux").UsbSensor()` on Linux only).
"""

from __future__ import annotations

from collections.abc import Callable

from agent.sensors import Sensor

SENSORS: tuple[Callable[[], Sensor], ...] = ()
