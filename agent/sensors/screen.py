"""Screen capture for screenshot evidence: one window's pixels, downscaled, as PNG bytes.

    capture_window(display, window_id, max_width, xauthority="") -> bytes | None

Called by the service (agent/screenshots.py), never by the pupil's helper: the picture is
taken by root from the display the helper's session runs on, so a pupil cannot feed it
another picture. None means the window has gone (closed, or unmapped) and there is nothing to
capture; `CaptureError` says why a capture that should have worked did not.

One module per platform, like the other sensors: X11 (screen_x11.py) is tested on Xvfb; the
Windows one (screen_windows.py) has never been run and says so.

On Linux the capture runs in a short-lived child (`python -m agent.sensors.screen_x11`), so
the service never holds the GIL for python-xlib's parsing of a whole window while a pupil types
(the keystroke path shares the interpreter), never keeps Pillow and Xlib or an image's buffers
in its own heap, and a capture that hangs on a wedged X server is killed, not left as a thread.

PNG, not JPEG or WebP: text in a chat window stays readable at any scale, and a typical
classroom window (mostly flat colour) is small as PNG; bench/results/screenshot.md has the
bytes per image.
"""

from __future__ import annotations

import subprocess
import sys

CHILD_TIMEOUT_S = 20.0  # the service's worker stops waiting after 2 s; this ends the child
CHILD_NO_CAPTURE = 3  # the child's exit status for a CaptureError (its message on stderr)


class CaptureError(Exception):
    """The capture could not be made (no X server, an unsupported visual, Windows)."""


def capture_window(display: str, window_id: int, max_width: int,
                   xauthority: str = "") -> bytes | None:  # fmt: skip
    if sys.platform.startswith("linux"):
        return _in_child(display, window_id, max_width, xauthority)
    if sys.platform == "win32":
        from agent.sensors import screen_windows

        return screen_windows.capture_window(display, window_id, max_width, xauthority)
    raise CaptureError(f"screen capture is not written for {sys.platform}")


def _in_child(display: str, window_id: int, max_width: int, xauthority: str) -> bytes | None:
    """The X11 capture in `python -m agent.sensors.screen_x11`: PNG bytes on its stdout, none
    when the window has gone, exit status CHILD_NO_CAPTURE and a sentence when it failed."""
    if not display or not window_id:
        return None
    command = [sys.executable, "-m", "agent.sensors.screen_x11", display, str(window_id),
               str(max_width), xauthority]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=CHILD_TIMEOUT_S,
                              check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise CaptureError(f"the capture took longer than {CHILD_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise CaptureError(f"cannot start the capture: {exc.strerror}") from None
    if done.returncode == 0:
        return done.stdout or None
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode == CHILD_NO_CAPTURE and said:
        raise CaptureError(said[-1][:300])
    raise CaptureError(f"the capture ended with status {done.returncode}: "
                       f"{said[-1][:300] if said else 'nothing said'}")  # fmt: skip
