"""Screen capture for screenshot evidence: one window's pixels, downscaled, as PNG bytes.

    capture_window(display, window_id, max_width, xauthority="") -> bytes | None

Called by the service (agent/screenshots.py), never by the pupil's helper: the picture is
taken by root from the display the helper's session runs on, so a pupil cannot feed it
another picture. None means the window has gone (closed, or unmapped) and there is nothing to
capture; `CaptureError` says why a capture that should have worked did not.

One module per platform, like the other sensors: X11 (screen_x11.py) is tested on Xvfb; the
Windows one (screen_windows.py) has never been run and says so.

PNG, not JPEG or WebP: text in a chat window stays readable at any scale, and a typical
classroom window (mostly flat colour) is small as PNG; bench/results/screenshot.md has the
bytes per image.
"""

from __future__ import annotations

import sys


class CaptureError(Exception):
    """The capture could not be made (no X server, an unsupported visual, Windows)."""


def capture_window(display: str, window_id: int, max_width: int,
                   xauthority: str = "") -> bytes | None:  # fmt: skip
    if sys.platform.startswith("linux"):
        from agent.sensors import screen_x11

        return screen_x11.capture_window(display, window_id, max_width, xauthority)
    if sys.platform == "win32":
        from agent.sensors import screen_windows

        return screen_windows.capture_window(display, window_id, max_width, xauthority)
    raise CaptureError(f"screen capture is not written for {sys.platform}")
