"""The sensors the service can start, in order, each under the name profiles use.

Each entry is a factory, so platform modules are imported only when that sensor is built
(Windows code is never imported on Linux, nor the reverse). The service starts a sensor only
when some profile of the active policy lists its name (`profiles.toml`: `sensors = [...]`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.sensors import Sensor


@dataclass(frozen=True)
class SensorSettings:
    """What the service knows that a sensor may need to be built."""

    state_root: Path  # the agent's state folder (root only)
    keyboard_socket: Path | None = None  # None: $SAFEGUARD_KEYBOARD_SOCKET or /run/...


@dataclass(frozen=True)
class SensorSpec:
    name: str  # as profiles.toml names it: "keyboard", "browser", "usb"
    factory: Callable[[SensorSettings], Sensor]


def _keyboard(settings: SensorSettings) -> Sensor:
    if sys.platform == "win32":  # in-process capture; reports unavailable in session 0
        from agent.sensors.keyboard_local import LocalKeyboardSensor

        return LocalKeyboardSensor()
    # Linux: the system service cannot see a desktop; per-login helpers capture and report
    # to this broker over a Unix socket (agent/helper.py).
    from agent.sensors.keyboard_broker import KeyboardBroker

    return KeyboardBroker(settings.keyboard_socket)


def _usb(settings: SensorSettings) -> Sensor:
    if sys.platform == "win32":
        from agent.sensors.usb_windows import UsbSensor as WindowsUsbSensor

        return WindowsUsbSensor()
    from agent.sensors.usb_linux import UsbSensor

    return UsbSensor()


def _browser(settings: SensorSettings) -> Sensor:  # watchdog + SQLite: Linux and Windows alike
    from agent.sensors.browser import BrowserSensor

    return BrowserSensor(state_dir=settings.state_root)


SENSORS: tuple[SensorSpec, ...] = (
    SensorSpec("keyboard", _keyboard),
    SensorSpec("browser", _browser),
    SensorSpec("usb", _usb),
)
