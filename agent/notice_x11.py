"""The X11 windows of the monitoring notice (python-xlib): what agent/notice_window.py drives.

Two top-level windows on one connection: the notice (text, OK button) and the indicator (one
line, top right). `events()` turns X events into what the notice cares about: "mapped" (the
notice is on screen), "ok", "closed" (by the window manager) and "reopen" (the indicator was
clicked). Plain InputOutput windows, black on white, with a core font: nothing to install.
"""

from __future__ import annotations

import time
from typing import Any, cast

from Xlib import XK, X, Xatom, Xutil
from Xlib import display as xdisplay

from agent.notice_window import (
    BUTTON_H,
    BUTTON_W,
    FONTS,
    INDICATOR_TITLE,
    MARGIN,
    TEXT_PROPERTY,
    TITLE,
    WIDTH,
    latin1,
    wrap,
)

OK_KEYS = {XK.XK_Return, XK.XK_KP_Enter, XK.XK_space}


class NoticeScreen:
    def __init__(self, display: str) -> None:
        self._d: Any = xdisplay.Display(display)
        self._screen = self._d.screen()
        # Any: the stubs type open_font as a bare Resource, without the font queries
        self._font: Any = cast(Any, next(f for f in map(self._d.open_font, FONTS) if f))
        info = self._font.query()
        self._ascent, self._line_h = info.font_ascent, info.font_ascent + info.font_descent + 4
        # Each character's advance, from the font's metrics: wrapping needs no round trips.
        self._advance = {info.min_char_or_byte2 + i: c.character_width
                         for i, c in enumerate(info.char_infos)}  # fmt: skip
        self._default_advance = int(info.max_bounds.character_width)
        self._atoms = {name: self._d.intern_atom(name) for name in (
            "WM_PROTOCOLS", "WM_DELETE_WINDOW", "_NET_WM_NAME", "UTF8_STRING", "_NET_WM_STATE",
            "_NET_WM_STATE_ABOVE", "_NET_WM_STATE_STICKY", "_NET_WM_STATE_SKIP_TASKBAR",
            "_NET_WM_STATE_SKIP_PAGER", "_NET_WM_WINDOW_TYPE", "_NET_WM_WINDOW_TYPE_DIALOG",
            "_NET_WM_WINDOW_TYPE_DOCK", TEXT_PROPERTY)}  # fmt: skip
        self._notice: Any = None
        self._lines: list[str] = []
        self._button = (0, 0, 0, 0)
        self.notice_text: str | None = None  # the text of the notice on screen, if one is
        self.notice_version = ""
        self._indicator: Any = None
        self._indicator_shown = False
        self._raised = 0.0

    def fileno(self) -> int:
        return int(self._d.fileno())

    def close(self) -> None:
        self._d.close()

    # -- the notice ----------------------------------------------------------------------------
    def show_notice(self, text: str, version: str) -> None:
        self.close_notice()
        width = min(WIDTH, self._screen.width_in_pixels - 20)
        self._lines = wrap(latin1(text), width - 2 * MARGIN, self._width_of)
        height = 2 * MARGIN + len(self._lines) * self._line_h + 16 + BUTTON_H
        x = (self._screen.width_in_pixels - width) // 2
        y = max(0, (self._screen.height_in_pixels - height) // 3)
        self._button = ((width - BUTTON_W) // 2, height - MARGIN - BUTTON_H, BUTTON_W, BUTTON_H)
        win = self._window(x, y, width, height, TITLE, "_NET_WM_WINDOW_TYPE_DIALOG",
                           ["_NET_WM_STATE_ABOVE"], takes_focus=True)  # fmt: skip
        win.change_property(self._atoms[TEXT_PROPERTY], self._atoms["UTF8_STRING"], 8,
                            text.encode())  # fmt: skip
        win.set_wm_protocols([self._atoms["WM_DELETE_WINDOW"]])
        win.map()
        self._d.flush()
        self._notice, self.notice_text, self.notice_version = win, text, version

    def close_notice(self) -> None:
        if self._notice is not None:
            self._notice.destroy()
            self._d.flush()
        self._notice, self.notice_text = None, None

    # -- the indicator -------------------------------------------------------------------------
    def indicator(self, on: bool) -> None:
        if on == self._indicator_shown:
            return
        if self._indicator is None:
            width = self._width_of(INDICATOR_TITLE) + 16
            x = self._screen.width_in_pixels - width - 8
            self._indicator = self._window(
                x, 8, width, self._line_h + 8, INDICATOR_TITLE, "_NET_WM_WINDOW_TYPE_DOCK",
                ["_NET_WM_STATE_ABOVE", "_NET_WM_STATE_STICKY", "_NET_WM_STATE_SKIP_TASKBAR",
                 "_NET_WM_STATE_SKIP_PAGER"], takes_focus=False)  # fmt: skip
        if on:
            self._indicator.map()
        else:
            self._indicator.unmap()
        self._indicator_shown = on
        self._d.flush()

    # -- events --------------------------------------------------------------------------------
    def events(self) -> list[str]:
        out: list[str] = []
        while self._d.pending_events():
            e = self._d.next_event()
            win = getattr(e, "window", None)
            if self._notice is not None and win == self._notice:
                out.extend(self._notice_event(e))
            elif self._indicator is not None and win == self._indicator:
                out.extend(self._indicator_event(e))
        return out

    def _notice_event(self, e: Any) -> list[str]:
        if e.type == X.MapNotify:
            return ["mapped"]
        if e.type == X.Expose and e.count == 0:
            self._draw_notice()
        elif e.type == X.KeyPress and self._d.keycode_to_keysym(e.detail, 0) in OK_KEYS:
            return ["ok"]
        elif e.type == X.ButtonPress:
            bx, by, bw, bh = self._button
            if bx <= e.event_x < bx + bw and by <= e.event_y < by + bh:
                return ["ok"]
        elif (e.type == X.ClientMessage and e.client_type == self._atoms["WM_PROTOCOLS"]
              and e.data[1][0] == self._atoms["WM_DELETE_WINDOW"]):  # fmt: skip
            return ["closed"]
        return []

    def _indicator_event(self, e: Any) -> list[str]:
        if e.type == X.Expose and e.count == 0:
            gc = self._gc(self._indicator)
            self._indicator.draw_text(gc, 8, 4 + self._ascent, INDICATOR_TITLE.encode())
        elif e.type == X.VisibilityNotify and e.state != X.VisibilityUnobscured:
            if time.monotonic() - self._raised >= 1.0:  # never a raise war with another window
                self._raised = time.monotonic()
                self._indicator.configure(stack_mode=X.Above)
                self._d.flush()
        elif e.type == X.ButtonPress:
            return ["reopen"]
        return []

    # -- drawing -------------------------------------------------------------------------------
    def _draw_notice(self) -> None:
        win, gc = self._notice, self._gc(self._notice)
        win.clear_area()
        for i, line in enumerate(self._lines):
            y = MARGIN + self._ascent + i * self._line_h
            win.draw_text(gc, MARGIN, y, line.encode("latin-1"))
        bx, by, bw, bh = self._button
        win.rectangle(gc, bx, by, bw - 1, bh - 1)
        label_w = self._width_of("OK")
        win.draw_text(gc, bx + (bw - label_w) // 2, by + (bh + self._ascent) // 2 - 2, b"OK")
        self._d.flush()

    def _gc(self, win: Any) -> Any:
        return win.create_gc(foreground=self._screen.black_pixel,
                             background=self._screen.white_pixel, font=self._font)  # fmt: skip

    def _width_of(self, text: str) -> int:
        return sum(self._advance.get(ord(c), self._default_advance) for c in text)

    def _window(self, x: int, y: int, width: int, height: int, title: str, kind: str,
                states: list[str], takes_focus: bool) -> Any:  # fmt: skip
        win = self._screen.root.create_window(
            x, y, width, height, 1, self._screen.root_depth,
            background_pixel=self._screen.white_pixel, border_pixel=self._screen.black_pixel,
            event_mask=X.ExposureMask | X.KeyPressMask | X.ButtonPressMask
            | X.StructureNotifyMask | X.VisibilityChangeMask,
        )  # fmt: skip
        win.set_wm_name(title)
        win.change_property(self._atoms["_NET_WM_NAME"], self._atoms["UTF8_STRING"], 8,
                            title.encode())  # fmt: skip
        win.set_wm_class("safeguard-notice", "Safeguard")
        win.set_wm_hints(flags=Xutil.InputHint, input=int(takes_focus))
        win.set_wm_normal_hints(flags=Xutil.PPosition | Xutil.PMinSize | Xutil.PMaxSize,
                                min_width=width, min_height=height, max_width=width,
                                max_height=height)  # fmt: skip
        win.change_property(self._atoms["_NET_WM_WINDOW_TYPE"], Xatom.ATOM, 32,
                            [self._atoms[kind]])  # fmt: skip
        win.change_property(self._atoms["_NET_WM_STATE"], Xatom.ATOM, 32,
                            [self._atoms[s] for s in states])  # fmt: skip
        return win
