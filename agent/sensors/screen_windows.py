"""Screen capture on Windows: NOT RUN. No Windows machine has executed this path.

What it would do: the service runs in session 0 and cannot read a desktop's pixels, so a
capture must be taken in the user's session (PrintWindow on the HWND the keyboard hook named,
from a helper started with the user's token) and handed to the service; that breaks the rule
that the pupil's own process never supplies the picture, so it is left unbuilt until it can
be designed and run on Windows. Until then every capture reports plainly that it is not
available, and the agent counts it as a screenshot not taken.
"""

from __future__ import annotations

from agent.sensors.screen import CaptureError


def capture_window(display: str, window_id: int, max_width: int,
                   xauthority: str = "") -> bytes | None:  # fmt: skip
    raise CaptureError("screenshots are not available on Windows yet (this code path has "
                       "never been run on Windows)")
