"""Key capture on X11 for the per-login helper: the X server's RECORD extension, read directly.

    X server ══ data connection (RECORD: key presses + focus events, in server order) ══╗
             ══ window connection (titles, keyboard mapping: agent/sensors/keyboard_x11.py) ══╣
                                                                 one thread, one select() ◀══╝
        ─▶ ReplyReader / core_events / Keymap / Focus (agent/sensors/keyboard_x11_input.py)
        ─▶ deliver(window, [token, ...])   per stretch of keys typed into one window

The RECORD context asks for device KeyPress events and for the FocusIn/FocusOut events the
server delivers, so both come in the order the server processed them: a key typed after a focus
change is always attributed to the new window (a password prompt's keys with the prompt), and
no round trip per key is needed to find the window. After the context is enabled, the data
connection carries nothing but RECORD replies (and the odd event every client gets), so this
module reads its socket itself: each reply is a 32-byte header and the recorded events, far
cheaper to split with `struct` than through python-xlib's generic reply parser.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from agent.sensors.keyboard import Unavailable
from agent.sensors.keyboard_keys import WindowInfo
from agent.sensors.keyboard_x11 import X11Windows
from agent.sensors.keyboard_x11_input import (
    END_OF_DATA,
    FROM_SERVER,
    KEY_PRESS,
    POINTER,
    START_OF_DATA,
    UNKNOWN,
    Focus,
    ReplyReader,
    core_events,
)

log = logging.getLogger(__name__)

Deliver = Callable[[WindowInfo, list[str]], None]
_ENABLE_CONTEXT = 5  # RECORD minor opcode
_START_TIMEOUT_S = 10.0


class X11Keyboard:
    """Keys typed in this X session, each stretch with the window it went to.

    `start(deliver)` returns once the server records; `deliver` is then called on the capture
    thread. `stop()` may be called from any thread."""

    def __init__(self, display: str | None = None) -> None:
        self._windows = X11Windows(display)
        try:
            self._data, self._context = _record_connection(display)
        except BaseException:
            self._windows.close()
            raise
        self._sock: socket.socket = self._data.display.socket
        self._reader = ReplyReader()
        self._early: list[tuple[int, bool, bytes]] = []  # recorded with StartOfData
        self._focus = Focus(self._windows.root)
        self._keymap = self._windows.keymap()
        self._thread: threading.Thread | None = None
        self.dropped = 0  # keys whose window cannot be known (counted, never kept)

    def start(self, deliver: Deliver) -> None:
        try:
            self._enable()
        except BaseException:
            self._close()
            raise
        self._thread = threading.Thread(target=self._run, args=(deliver,), name="x11-keys",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already closed
            self._sock.shutdown(socket.SHUT_RDWR)  # the capture thread reads end-of-stream
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _enable(self) -> None:
        major = self._data.display.get_extension_major("RECORD")
        self._sock.sendall(struct.pack("=BBHI", major, _ENABLE_CONTEXT, 2, self._context))
        self._sock.settimeout(_START_TIMEOUT_S)
        try:
            while True:  # the server answers StartOfData once it records
                data = self._sock.recv(65536)
                if not data:
                    raise Unavailable("the X server closed the RECORD connection")
                replies = self._reader.feed(data)
                starts = [i for i, (category, _, _) in enumerate(replies)
                          if category == START_OF_DATA]  # fmt: skip
                if starts:
                    self._early = replies[starts[0] + 1 :]
                    break
        except TimeoutError:
            raise Unavailable("the X server did not start recording keys") from None
        finally:
            self._sock.settimeout(None)

    def _run(self, deliver: Deliver) -> None:
        windows = self._windows
        try:
            if not self._handle(self._early, deliver):
                return
            data_fd, windows_fd = self._sock.fileno(), windows.fileno()
            poll = select.poll()
            poll.register(data_fd, select.POLLIN)
            poll.register(windows_fd, select.POLLIN)
            while True:
                ready = [fd for fd, _ in poll.poll()]
                if windows_fd in ready or windows.dirty:
                    windows.handle_events()  # a title change before the keys after it
                    if windows.keymap_changed:
                        self._keymap = windows.keymap()
                if data_fd in ready:
                    data = self._sock.recv(65536)
                    if not data or not self._handle(self._reader.feed(data), deliver):
                        return
        except Exception as exc:  # the X server went away, a bug: the helper reports it
            log.warning("keyboard.x11_capture_failed kind=%s", type(exc).__name__)
        finally:
            self._close()

    def _handle(self, replies: list[tuple[int, bool, bytes]], deliver: Deliver) -> bool:
        """Keys and focus changes of these replies, in order, delivered per window. False at
        the end of the recording."""
        stretches: list[tuple[int, list[str], bool]] = []  # (focus, keys, focus moved after)
        keys: list[str] = []
        focus, keymap = self._focus, self._keymap
        where = focus.window
        for category, swapped, data in replies:
            if category == END_OF_DATA:
                return False
            if category != FROM_SERVER:
                continue
            for kind, detail, wid, state in core_events(data, swapped):
                if kind == KEY_PRESS:
                    token = keymap.token(detail, state)
                    if token is not None:
                        keys.append(token)
                elif focus.event(kind, detail, wid, state):
                    if keys:
                        stretches.append((where, keys, True))
                        keys = []
                    where = focus.window
        if keys:
            stretches.append((where, keys, False))
        for where, typed, moved in stretches:
            if moved and where in (UNKNOWN, POINTER):
                # Only a question to the server could tell where these keys went, and it would
                # answer with the focus as it is now, after the move: do not guess.
                self.dropped += len(typed)
                continue
            window, found = self._windows.resolve(where)
            if where == UNKNOWN and focus.window == UNKNOWN:
                focus.window = found  # the server said; that window is watched from now on
            deliver(window, typed)
        return True

    def _close(self) -> None:
        self._sock.close()  # python-xlib's close would try to read our replies
        try:
            self._windows.close()
        except Exception as exc:  # closing a connection the server already dropped
            log.debug("keyboard.x11_close kind=%s", type(exc).__name__)


def _record_connection(display: str | None) -> tuple[Any, int]:
    """A second connection to the X server with a RECORD context for key presses and focus
    events, created (not yet enabled) on it; the server frees it when the connection closes."""
    from Xlib import X
    from Xlib import display as xdisplay
    from Xlib.ext import record

    try:
        conn: Any = xdisplay.Display(display)
    except Exception as exc:  # Xlib raises several kinds for "cannot connect"
        raise Unavailable(f"cannot open the X display: {type(exc).__name__}") from None
    try:
        if not conn.has_extension("RECORD"):
            raise Unavailable("the X server has no RECORD extension")
        wanted = {
            "core_requests": (0, 0), "core_replies": (0, 0), "ext_requests": (0, 0, 0, 0),
            "ext_replies": (0, 0, 0, 0), "delivered_events": (X.FocusIn, X.FocusOut),
            "device_events": (X.KeyPress, X.KeyPress), "errors": (0, 0),
            "client_started": False, "client_died": False,
        }  # fmt: skip
        context = int(conn.record_create_context(0, [record.AllClients], [wanted]))
        conn.sync()  # an error (no such extension on this screen …) raises here
    except BaseException:
        conn.close()
        raise
    return conn, context
