"""Which X11 window keys go to: its application and title (python-xlib, EWMH).

The focus comes from the X server's focus events, read in the key stream itself
(agent/sensors/keyboard_x11_record.py); this module turns a focus window id into a
`WindowInfo` and keeps it fresh, over its own connection, used by one thread:

- The window named by the focus is the one carrying WM_NAME: itself, a parent (focus on a
  child), or a child (a window manager's frame). Its title is `_NET_WM_NAME` (UTF-8) or
  `WM_NAME`; its application is the process named by `_NET_WM_PID`, else the `WM_CLASS` class.
- Described once per focus change, then watched: PropertyChangeMask on it, so a title change (a
  browser's tab, a page that becomes a sign-in page) is known at once, and FocusChangeMask on its
  top-level window, so the server reports the focus leaving it even if its application does not
  ask for focus events. Only the focused window is watched.
- When the focus events cannot tell (at start; focus moved to a window nobody watches) one
  GetInputFocus answers; when the focus is PointerRoot, None or the root (no window manager, focus
  follows the pointer), keys go to the window under the pointer: QueryPointer each time.

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
from agent.sensors.keyboard_x11_input import POINTER, UNKNOWN, Keymap

log = logging.getLogger(__name__)


class X11Windows:
    def __init__(self, display: str | None = None) -> None:
        from Xlib import X, Xatom, error
        from Xlib import display as xdisplay

        self._X = X
        self._errors: tuple[type[BaseException], ...] = (error.XError, error.BadWindow)
        self._catch = error.CatchError(error.BadWindow)  # a watched window that went away
        try:
            self._d: Any = xdisplay.Display(display)
        except Exception as exc:  # Xlib raises several kinds for "cannot connect"
            raise Unavailable(f"cannot open the X display: {type(exc).__name__}") from None
        self.root = int(self._d.screen().root.id)
        self._root = self._d.screen().root
        atom = self._d.intern_atom
        self._name_atom = atom("_NET_WM_NAME")
        self._pid_atom = atom("_NET_WM_PID")
        self._utf8 = atom("UTF8_STRING")
        self._described = {self._name_atom, self._pid_atom, Xatom.WM_NAME, Xatom.WM_CLASS}
        self._focus = 0  # the window id `_info` describes
        self._info: WindowInfo | None = None
        self._client = 0  # the window whose title `_info` holds
        self._watched: dict[int, int] = {}  # window id -> event mask we selected on it
        self.dirty = False  # requests were made: events may wait in Xlib's queue
        self.keymap_changed = False

    def fileno(self) -> int:
        return int(self._d.fileno())

    def close(self) -> None:
        self._d.close()

    # WindowSource (agent/sensors/keyboard.py): the focus asked of the server each time.
    def active(self) -> WindowInfo:
        return self.resolve(UNKNOWN)[0]

    def forget(self) -> None:
        self._info = None

    def resolve(self, focus: int) -> tuple[WindowInfo, int]:
        """The window keys go to, for a focus from the focus events (a window id, POINTER or
        UNKNOWN), and what the focus turned out to be (UNKNOWN answered by the server)."""
        try:
            if focus == UNKNOWN:
                self.dirty = True
                got = self._d.get_input_focus().focus
                focus = POINTER if isinstance(got, int) or got is None else int(got.id)
            wid = focus
            if focus in (POINTER, self.root):
                self.dirty = True
                child = self._root.query_pointer().child  # focus follows the pointer
                wid = int(child.id) if child else 0
            if wid != self._focus or self._info is None:
                self.dirty = True
                self._info, self._focus = self._describe(wid), wid
        except self._errors:  # the window went away between two requests
            self._info, self._focus = None, 0
            return WindowInfo(), focus
        return self._info, focus

    def handle_events(self) -> None:
        """Read what the server sent on this connection: a watched window's title changing, the
        keyboard mapping changing (focus events come with the keys instead)."""
        X = self._X
        self.dirty = False
        while self._d.pending_events():
            event = self._d.next_event()
            if event.type == X.PropertyNotify:
                if event.window.id == self._client and event.atom in self._described:
                    self._info = None  # described again before the next keys are sent
            elif event.type == X.MappingNotify and event.request != X.MappingPointer:
                self.keymap_changed = True

    def keymap(self) -> Keymap:
        self.dirty, self.keymap_changed = True, False
        info = self._d.display.info
        count = info.max_keycode - info.min_keycode + 1
        keysyms = self._d.get_keyboard_mapping(info.min_keycode, count)
        return Keymap(info.min_keycode, keysyms, self._d.get_modifier_mapping())

    def _describe(self, wid: int) -> WindowInfo:
        if not wid:
            self._watch({})
            return WindowInfo()
        window = self._d.create_resource_object("window", wid)
        client, top = self._client_of(window)
        X = self._X
        masks = {top.id: X.FocusChangeMask}
        masks[client.id] = masks.get(client.id, 0) | X.PropertyChangeMask
        self._watch(masks)  # before reading, so a change just after is not missed
        self._client = int(client.id)
        title = self._title(client)
        app = self._app(client)
        return WindowInfo(app, title, is_password_window(app, title), wid)

    def _client_of(self, window: Any) -> tuple[Any, Any]:
        """(the window that carries WM_NAME or WM_CLASS, the top-level window above it)."""
        client = None
        probe = window
        for _ in range(16):
            if client is None and (
                probe.get_wm_name() is not None or probe.get_wm_class() is not None
            ):
                client = probe
            parent = probe.query_tree().parent
            if not parent or parent.id == self.root:
                break
            probe = parent
        if client is None:  # a window manager's frame: the client is a child
            children = window.query_tree().children
            client = next((c for c in children if c.get_wm_name() is not None), window)
        return client, probe

    def _watch(self, masks: dict[int, int]) -> None:
        for wid in self._watched.keys() - masks.keys():
            self._window(wid).change_attributes(onerror=self._catch, event_mask=0)
        for wid, mask in masks.items():
            if self._watched.get(wid) != mask:
                self._window(wid).change_attributes(onerror=self._catch, event_mask=mask)
        self._watched = masks

    def _window(self, wid: int) -> Any:
        return self._d.create_resource_object("window", wid)

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
