"""Which X11 window has focus, its application and title (python-xlib, EWMH).

With a window manager: the root window's `_NET_ACTIVE_WINDOW`. Without one (a bare Xvfb, a
kiosk): the input focus, or the window under the pointer when focus follows it. The title is
`_NET_WM_NAME` (UTF-8) or `WM_NAME`; the application is the process named by `_NET_WM_PID`, else
the `WM_CLASS` class. Looked up once per window id and cached; a cheap id query per call.

The process name is read from /proc as psutil's `Process.name()` does on Linux, so the helper,
which runs in every desktop session, does not load psutil for it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from agent.sensors.keyboard import Unavailable, is_password_window
from agent.sensors.keyboard_keys import WindowInfo

log = logging.getLogger(__name__)

_CACHE = 64


class X11Windows:
    def __init__(self, display: str | None = None) -> None:
        from Xlib import X, error
        from Xlib import display as xdisplay

        self._X = X
        self._errors: tuple[type[BaseException], ...] = (error.XError, error.BadWindow)
        try:
            self._d: Any = xdisplay.Display(display)
        except Exception as exc:  # Xlib raises several kinds for "cannot connect"
            raise Unavailable(f"cannot open the X display: {type(exc).__name__}") from None
        self._root = self._d.screen().root
        atom = self._d.intern_atom
        self._active_atom = atom("_NET_ACTIVE_WINDOW")
        self._name_atom = atom("_NET_WM_NAME")
        self._pid_atom = atom("_NET_WM_PID")
        self._utf8 = atom("UTF8_STRING")
        self._cache: dict[int, WindowInfo] = {}

    def close(self) -> None:
        self._d.close()

    def active(self) -> WindowInfo:
        try:
            wid = self._active_id()
            if wid in self._cache:
                return self._cache[wid]
            info = self._describe(wid)
        except self._errors:  # the window went away between two calls
            return WindowInfo()
        if len(self._cache) >= _CACHE:
            self._cache.clear()  # titles change; a small, fresh cache is enough
        self._cache[wid] = info
        return info

    def forget(self) -> None:
        """Drop cached titles (call now and then: a browser's title follows its tab)."""
        self._cache.clear()

    def _active_id(self) -> int:
        prop = self._root.get_full_property(self._active_atom, self._X.AnyPropertyType)
        if prop is not None and prop.value and int(prop.value[0]):
            return int(prop.value[0])
        focus = self._d.get_input_focus().focus
        if isinstance(focus, int) or focus is None or focus.id == self._root.id:
            child = self._root.query_pointer().child  # focus follows the pointer
            return int(child.id) if child else 0
        return int(focus.id)

    def _describe(self, wid: int) -> WindowInfo:
        if not wid:
            return WindowInfo()
        window = self._client(self._d.create_resource_object("window", wid))
        title = self._title(window)
        app = self._app(window)
        return WindowInfo(app, title, is_password_window(app, title), wid)

    def _client(self, window: Any) -> Any:
        """The window that carries WM_NAME: itself, a parent (focus on a child), or a child
        (a window manager's frame)."""
        probe = window
        for _ in range(8):
            if probe.get_wm_name() is not None or probe.get_wm_class() is not None:
                return probe
            tree = probe.query_tree()
            if tree.parent is None or tree.parent.id == self._root.id:
                break
            probe = tree.parent
        for child in window.query_tree().children:
            if child.get_wm_name() is not None:
                return child
        return window

    def _title(self, window: Any) -> str:
        prop = window.get_full_property(self._name_atom, self._utf8)
        if prop is not None and prop.value:
            value = prop.value
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        name = window.get_wm_name()
        if isinstance(name, bytes):
            return name.decode("latin-1")
        return str(name or "")

    def _app(self, window: Any) -> str:
        prop = window.get_full_property(self._pid_atom, self._X.AnyPropertyType)
        if prop is not None and prop.value:
            name = process_name(int(prop.value[0]))
            if name is not None:
                return name
        cls = window.get_wm_class()
        return str(cls[1]) if cls else ""


def process_name(pid: int) -> str | None:
    """A process's name as psutil's Process.name() gives it on Linux, or None if it is gone
    (or not ours to see): the kernel's `comm`, and when that is cut at 15 characters the base
    name of argv[0] if it starts with it ("gnome-keyring-d" -> "gnome-keyring-daemon")."""
    if pid <= 0:
        return None
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_bytes()
    except OSError:
        return None
    enc = sys.getfilesystemencoding()
    name = stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode(enc, "surrogateescape")
    if len(name) >= 15:
        try:
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            raw = b""
        raw = raw.removesuffix(b"\0")
        args = raw.split(b"\0")
        if len(args) == 1 and b" " in raw:  # a process that rewrote its title with spaces
            args = raw.split(b" ")
        if raw:
            extended = Path(args[0].decode(enc, "surrogateescape")).name
            if extended.startswith(name):
                name = extended
    return name
