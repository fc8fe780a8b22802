"""Keyboard capture: pynput's hook turned into key tokens on a queue, and which window has focus.

The hook callback does the least it can (Windows silently removes a low-level hook that is slow
to return): map the key to a token and `put_nowait` it on a bounded queue. Matching happens on
another thread (agent/detector.py). What the platform can tell about the focused window comes
from one factory, `window_source()`, which imports the X11 or Windows module lazily.

Password prompts are recognised by a heuristic on the window's application and title
(`is_password_window`); keys typed into one are dropped before they are queued.
"""

from __future__ import annotations

import os
import queue
import re
import sys
from typing import Any, Protocol

from agent.sensors.keyboard_keys import BACKSPACE, DELETE, ENTER, RESET, WindowInfo

_LINEFEED = 0xFF0A  # X keysym some tools (xdotool) send for "\n": an Enter
QUEUE_KEYS = 4096  # keys waiting for the matcher; past this they are dropped and counted

# Applications whose every keystroke is a secret (prompts and password managers).
_PASSWORD_APPS = re.compile(
    r"pinentry|gcr-prompter|ssh-askpass|polkit|lxpolkit|kdesu|gksu|keepass|bitwarden|1password"
    r"|credential|consent\.exe|logonui",
    re.IGNORECASE,
)
# Titles that announce a password prompt, in the languages a UK school meets most.
_PASSWORD_TITLES = re.compile(
    r"password|passphrase|passwort|mot de passe|contrase|parola|has[lł]o|\bpin\b"
    r"|authenticat|sign[ -]?in|log[ -]?in|unlock",
    re.IGNORECASE,
)


def is_password_window(app: str, title: str) -> bool:
    """Best effort: a prompt or page that names a password, sign-in or unlock, or an app that
    only takes secrets. It cannot see a password *field* inside an ordinary window."""
    return bool(_PASSWORD_APPS.search(app) or _PASSWORD_TITLES.search(title))


class WindowSource(Protocol):
    def active(self) -> WindowInfo:
        """The window keys are going to now (cached per window; cheap to call per batch)."""
        ...

    def forget(self) -> None:
        """Drop cached titles (a browser's title follows its tab)."""
        ...

    def close(self) -> None: ...


class Unavailable(Exception):
    """Capture cannot work in this session (no display, Wayland, no X RECORD)."""


def session_problem(env: dict[str, str] | None = None) -> str | None:
    """Why keys cannot be captured in this session, or None if they can."""
    env = dict(os.environ) if env is None else env
    if sys.platform == "win32":  # NOT yet run on Windows
        return _windows_session_problem()
    kind = env.get("XDG_SESSION_TYPE", "")
    if kind == "wayland" or (env.get("WAYLAND_DISPLAY") and kind != "x11"):
        return (
            "Wayland session: the compositor does not let one client see other applications' "
            "keys, so pynput cannot capture them (log in with an X11 session)"
        )
    if not env.get("DISPLAY"):
        return "no X display in this session (DISPLAY is not set)"
    return None


def _windows_session_problem() -> str | None:
    """A Windows service (the PowerShell installer's SYSTEM task too) runs in session 0, which
    has no desktop: a hook there sees no one's keys. Say so rather than report "running"."""
    import ctypes

    session = ctypes.c_ulong(0)
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
    if kernel32.ProcessIdToSessionId(os.getpid(), ctypes.byref(session)) and session.value == 0:
        return ("running in session 0 (a service or SYSTEM task), which has no desktop: "
                "keyboard capture on Windows needs a per-logon helper, not built yet")
    return None


def window_source() -> WindowSource:
    """The platform's window information, imported lazily."""
    if sys.platform == "win32":
        from agent.sensors.keyboard_windows import Win32Windows

        return Win32Windows()
    from agent.sensors.keyboard_x11 import X11Windows

    return X11Windows()


class KeyCapture:
    """pynput's global listener feeding `keys`; `dropped` counts keys lost to a full queue."""

    def __init__(self) -> None:
        self.keys: queue.Queue[str | None] = queue.Queue(maxsize=QUEUE_KEYS)  # None: stop
        self.dropped = 0
        self._mods: set[Any] = set()
        self._listener: Any = None

    def start(self) -> None:
        from pynput import keyboard  # imported here: it opens the display on import (X11)

        k = keyboard.Key
        self._named = {
            k.space: " ", k.backspace: BACKSPACE, k.delete: DELETE, k.enter: ENTER,
            k.tab: RESET, k.esc: RESET, k.left: RESET, k.right: RESET, k.up: RESET,
            k.down: RESET, k.home: RESET, k.end: RESET, k.page_up: RESET, k.page_down: RESET,
        }  # fmt: skip
        self._modifiers = {k.ctrl, k.ctrl_l, k.ctrl_r, k.alt, k.alt_l, k.alt_r, k.cmd,
                           k.cmd_l, k.cmd_r}  # fmt: skip
        self._listener = keyboard.Listener(on_press=self._press, on_release=self._release)
        self._listener.start()
        self._listener.wait()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()

    def alive(self) -> bool:
        return self._listener is not None and bool(self._listener.is_alive())

    # The hook: a dict lookup or an attribute read, then put_nowait. Nothing else.
    def _press(self, key: Any) -> None:
        if key in self._modifiers:
            self._mods.add(key)
            return
        token = self._named.get(key)
        if token is None:
            ch = getattr(key, "char", None)
            if getattr(key, "vk", None) == _LINEFEED:
                token = ENTER
            elif not ch or len(ch) != 1:
                return  # shift, function keys, dead keys: nothing typed
            else:
                token = RESET if self._mods or not ch.isprintable() else ch  # shortcuts
        try:
            self.keys.put_nowait(token)
        except queue.Full:
            self.dropped += 1

    def _release(self, key: Any) -> None:
        self._mods.discard(key)
