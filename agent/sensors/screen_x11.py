"""Screen capture on X11: one window's pixels through python-xlib (GetImage), downscaled
with Pillow to at most max_width across, encoded as PNG. The service runs it as a child
(`python -m agent.sensors.screen_x11 DISPLAY WINDOW MAX_WIDTH [XAUTHORITY]`, screen.py says why):
the PNG on stdout, nothing if the window has gone, a sentence on stderr if it failed.

The service runs as root and connects to the pupil's display itself. An X server that asks
for a cookie (Xorg with a display manager) gets the session's own: the caller passes the
XAUTHORITY path it read from the helper's process environment (kernel-attested, not what the
helper says). python-xlib reads that path only from the environment, so the variable is set
for the length of one connect, under a lock.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image
from Xlib import X, display, error

from agent.sensors.screen import CaptureError

_ENV_LOCK = threading.Lock()
_MODES = {24: "BGRX", 32: "BGRX"}  # ZPixmap at 32 bits per pixel, little-endian servers


@contextmanager
def _xauthority(path: str) -> Iterator[None]:
    if not path:
        yield
        return
    with _ENV_LOCK:
        old = os.environ.get("XAUTHORITY")
        os.environ["XAUTHORITY"] = path
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("XAUTHORITY", None)
            else:
                os.environ["XAUTHORITY"] = old


def _connect(name: str, xauthority: str) -> display.Display:
    host = name.rpartition(":")[0]
    if host not in ("", "unix"):  # root must not dial out to a display a pupil names
        raise CaptureError(f"the display {name!r} is not on this PC")
    try:
        with _xauthority(xauthority):
            return display.Display(name)
    except (error.DisplayError, OSError) as exc:
        raise CaptureError(f"cannot connect to X display {name!r}: {exc}") from None


def grab(d: display.Display, window_id: int) -> Image.Image | None:
    """The window's pixels as an RGB image; None if it has gone or is not on screen."""
    window: Any = d.create_resource_object("window", window_id)
    try:
        attrs = window.get_attributes()
        if attrs.map_state != X.IsViewable:
            return None
        geo = window.get_geometry()
        if geo.depth not in _MODES:
            raise CaptureError(f"a window of depth {geo.depth} is not supported")
        raw = window.get_image(0, 0, geo.width, geo.height, X.ZPixmap, 0xFFFFFFFF)
    except (error.BadWindow, error.BadDrawable, error.BadMatch):
        return None  # closed or unmapped between the detection and now
    data = raw.data if isinstance(raw.data, bytes) else bytes(raw.data)
    if len(data) < geo.width * geo.height * 4:
        raise CaptureError("the X server sent an image of an unexpected size")
    return Image.frombytes("RGB", (geo.width, geo.height), data, "raw", _MODES[geo.depth])


def downscale(image: Image.Image, max_width: int) -> Image.Image:
    """At most max_width across, aspect kept (the tests downscale an xwd capture with this)."""
    if image.width <= max_width:
        return image
    height = max(1, round(image.height * max_width / image.width))
    return image.resize((max_width, height), Image.Resampling.BILINEAR)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=6)
    return out.getvalue()


def capture_window(name: str, window_id: int, max_width: int,
                   xauthority: str = "") -> bytes | None:  # fmt: skip
    if not name or not window_id:
        return None
    d = _connect(name, xauthority)
    try:
        image = grab(d, window_id)
    finally:
        d.close()
    return None if image is None else png(downscale(image, max_width))


def main(argv: list[str]) -> int:
    from agent.sensors.screen import CHILD_NO_CAPTURE

    display_name, window_id, max_width = argv[0], int(argv[1]), int(argv[2])
    xauthority = argv[3] if len(argv) > 3 else ""
    try:
        image = capture_window(display_name, window_id, max_width, xauthority)
    except CaptureError as exc:
        print(exc, file=sys.stderr)
        return CHILD_NO_CAPTURE
    if image:
        sys.stdout.buffer.write(image)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
