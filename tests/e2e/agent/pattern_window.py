"""A real X window with known content (a grid of distinct colours), drawn with python-xlib, and
an independent capture of it with `xwd -id` read back into pixels."""

from __future__ import annotations

import struct
import subprocess
from typing import Any

from PIL import Image
from Xlib import X, display

from tests.conftest import require_tool

COLS, ROWS, CELL = 8, 4, 100  # an 800x400 window


def colour(col: int, row: int) -> int:
    """A distinct 24-bit colour per cell (0xRRGGBB)."""
    return ((col * 32 + 16) << 16) | ((row * 64 + 32) << 8) | ((col + row) * 20 + 10)


class PatternWindow:
    def __init__(self, name: str, title: str = "pattern") -> None:
        self.d = display.Display(name)
        screen = self.d.screen()
        self.window: Any = screen.root.create_window(
            20, 20, COLS * CELL, ROWS * CELL, 0, screen.root_depth, background_pixel=0,
            event_mask=X.ExposureMask | X.StructureNotifyMask)  # fmt: skip
        self.window.set_wm_name(title)
        self.window.map()
        while self.d.next_event().type != X.MapNotify:  # drawn only once it is on screen
            pass
        self.draw()

    @property
    def id(self) -> int:
        return int(self.window.id)

    def draw(self) -> None:
        for row in range(ROWS):
            for col in range(COLS):
                gc = self.window.create_gc(foreground=colour(col, row))
                self.window.fill_rectangle(gc, col * CELL, row * CELL, CELL, CELL)
                gc.free()
        self.d.sync()

    def close(self) -> None:
        self.window.destroy()
        self.d.sync()
        self.d.close()


def xwd_image(name: str, window_id: int) -> Image.Image:
    """The window as `xwd -id` sees it (ZPixmap, 32 bits per pixel, TrueColor masks)."""
    raw = subprocess.run([require_tool("xwd"), "-silent", "-display", name, "-id", str(window_id)],
                         capture_output=True, check=True, timeout=60).stdout  # fmt: skip
    f = struct.unpack(">25I", raw[:100])
    header_size, fmt, width, height, byte_order = f[0], f[2], f[4], f[5], f[7]
    bpp, stride, masks, ncolors = f[11], f[12], f[14:17], f[19]
    assert fmt == 2 and bpp == 32, f"xwd wrote format {fmt} at {bpp} bits per pixel"
    pixels = raw[header_size + 12 * ncolors :]
    order = "<" if byte_order == 0 else ">"
    out = Image.new("RGB", (width, height))
    put = out.load()
    assert put is not None
    shifts = [(m & -m).bit_length() - 1 for m in masks]
    for y in range(height):
        line = pixels[y * stride : y * stride + width * 4]
        for x, (v,) in enumerate(struct.iter_unpack(order + "I", line)):
            put[x, y] = tuple((v & m) >> s for m, s in zip(masks, shifts, strict=True))
    return out
