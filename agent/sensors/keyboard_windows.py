"""Which Windows window has focus, its application and title (ctypes, user32). NOT YET RUN ON
WINDOWS: written to the documented Win32 API, imported only there by `window_source()`.

GetForegroundWindow → GetWindowTextW (title) and GetWindowThreadProcessId → the process
name (psutil). Cheap enough to call per batch of keys; no cache needed.
"""

from __future__ import annotations

import ctypes
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]  # stubs in dev extras only

from agent.sensors.keyboard import Unavailable, is_password_window
from agent.sensors.keyboard_keys import WindowInfo

_TITLE_MAX = 512


class Win32Windows:
    def __init__(self) -> None:
        try:
            self._user32: Any = getattr(ctypes, "windll").user32  # noqa: B009  # Windows only
        except AttributeError:
            raise Unavailable("user32 is not available (not Windows)") from None

    def active(self) -> WindowInfo:
        hwnd = self._user32.GetForegroundWindow()
        if not hwnd:
            return WindowInfo()
        buf = ctypes.create_unicode_buffer(_TITLE_MAX)
        self._user32.GetWindowTextW(hwnd, buf, _TITLE_MAX)
        pid = ctypes.c_ulong(0)
        self._user32.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
        try:
            app = str(psutil.Process(pid.value).name())
        except psutil.Error:
            app = ""
        return WindowInfo(app, buf.value, is_password_window(app, buf.value), int(hwnd))

    def forget(self) -> None:
        """Nothing cached: every call asks Windows."""

    def close(self) -> None:
        """Nothing to close."""
