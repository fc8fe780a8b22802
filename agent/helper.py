"""`safeguard-agent keyboard-helper`: keyboard capture inside one user's desktop session.

The system service cannot see a desktop, so the installer starts this helper at every
graphical login (XDG autostart), as the logged-in user. It:

  1. connects to the service's socket (agent/helper_protocol.py), retrying while the
     service is not up, and says hello;
  2. if this session cannot be captured (Wayland, no display) says so ("unavailable" with the
     reason) and captures nothing;
  3. captures only when the service answers ["capture", true] (the account's profile has the
     keyboard sensor: staff have it off by default, so their keys are never even read);
  4. sends each batch of keys with the window they went to; keys typed into a window taken for
     a password prompt are dropped here and never leave the process;
  5. re-executes itself when the service says ["restart", reason]: the service's watchdog found
     it over its memory limit, and only the helper can start a process in this session (same
     pid, same environment, fresh memory; agent/sensors/helper_peers.py).
  6. shows the monitoring notice the service sends (the live policy's text), once per login,
     and then an indicator while connected (agent/notice_window.py), and reports the showing.

It keeps no file and logs no keys. The account is not something it claims: the service reads
the uid from the socket (SO_PEERCRED).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

from agent import __version__
from agent.helper_protocol import MAX_BATCH, LineReader, ProtocolError, decode, encode
from agent.notice_window import NoticeDisplay, Screen
from agent.sensors.keyboard import Unavailable, session_problem
from agent.sensors.keyboard_keys import WindowInfo

log = logging.getLogger(__name__)

Deliver = Callable[[WindowInfo, list[str]], None]


class KeySource(Protocol):
    """Captured keys, handed over in stretches typed into one window (on the source's thread)."""

    def start(self, deliver: Deliver) -> None: ...

    def stop(self) -> None: ...

    def alive(self) -> bool: ...


def x11_keys() -> KeySource:
    from agent.sensors.keyboard_x11_record import X11Keyboard  # python-xlib: only to capture

    return X11Keyboard()


def reexec() -> None:
    """Replace this process with a fresh run of the same command (sys.orig_argv: the
    interpreter, its options and the script). Its sockets close on exec (Python opens them
    non-inheritable), so the service sees the old connection end and a new one start."""
    os.execv(sys.executable, sys.orig_argv)  # noqa: S606  # our own command line, no shell


def x11_notice(display: str) -> Screen:
    from agent.notice_x11 import NoticeScreen  # python-xlib: only to show the notice

    return NoticeScreen(display)


class Helper:
    def __init__(self, path: Path, keys: Callable[[], KeySource] = x11_keys,
                 retry_s: float = 2.0, restart: Callable[[], None] = reexec,
                 screen: Callable[[str], Screen] = x11_notice) -> None:  # fmt: skip
        self._path = path
        self._keys = keys
        self._restart = restart
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._capture: KeySource | None = None
        self._window: WindowInfo | None = None  # the last window sent to the service
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None  # the service's connection, while there is one
        self.notice = NoticeDisplay(os.environ.get("DISPLAY"), self._report, screen)
        self.connected = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        while not self._stop.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(str(self._path))
                    self._session(sock)
            except (OSError, ProtocolError) as exc:
                log.info("helper.disconnected kind=%s retry_s=%g", type(exc).__name__,
                         self._retry_s)  # fmt: skip
            finally:
                self.connected.clear()
                self.notice.connected(False)
                self._sock = None
                self._stop_capture()
            self._stop.wait(self._retry_s)
        self.notice.stop()
        return 0

    def _session(self, sock: socket.socket) -> None:
        problem = session_problem()
        hello = {"display": os.environ.get("DISPLAY", ""), "version": __version__,
                 "session": os.environ.get("XDG_SESSION_TYPE", "")}  # fmt: skip
        self._send(sock, ["hello", hello])
        if problem:
            self._send(sock, ["s", "unavailable", problem])
        self._sock = sock
        self.notice.connected(True)
        self.connected.set()
        log.info("helper.connected socket=%s capture_possible=%s", self._path, problem is None)
        sock.settimeout(0.5)
        reader = LineReader(sock)
        while not self._stop.is_set():
            try:
                lines = reader.lines()
            except TimeoutError:
                if self._capture is not None and not self._capture.alive():
                    self._send(sock, ["s", "unavailable", "the key listener stopped"])
                    self._stop_capture()
                continue
            if lines is None:
                return
            for line in lines:
                message = decode(line)
                if message[0] == "restart":
                    self._restart_now(sock, str(message[1]) if len(message) > 1 else "")
                elif message[0] == "notice" and len(message) == 3:
                    self.notice.offer(str(message[1]), str(message[2]))
                elif message[0] == "capture" and problem is None:
                    on = bool(message[1]) if len(message) > 1 else False
                    if on:
                        self._start_capture(sock)
                    else:
                        self._stop_capture()

    def _restart_now(self, sock: socket.socket, reason: str) -> None:
        log.warning("helper.restarting reason=%s", reason)
        self._stop_capture()
        sock.close()
        for handler in logging.getLogger().handlers:  # what it logged so far is not lost
            handler.flush()
        try:
            self._restart()
        except OSError as exc:  # carry on as we are; the service stops us if it must
            log.error("helper.restart_failed kind=%s detail=%s", type(exc).__name__, exc)

    def _start_capture(self, sock: socket.socket) -> None:
        if self._capture is not None:
            return
        try:
            capture = self._keys()
            self._window = None
            capture.start(partial(self._deliver, sock))
        except (Unavailable, ImportError, OSError) as exc:
            self._send(sock, ["s", "unavailable", f"cannot capture keys: {exc}"])
            return
        self._capture = capture
        self._send(sock, ["s", "running", ""])
        log.info("helper.capturing")

    def _stop_capture(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            try:
                capture.stop()
            except Exception as exc:  # e.g. the X server went away at logout
                log.info("helper.capture_stop_failed kind=%s", type(exc).__name__)
            log.info("helper.capture_stopped")

    def _deliver(self, sock: socket.socket, window: WindowInfo, keys: list[str]) -> None:
        """Keys typed into one window (the capture's thread): the window first when it is a
        new one, then the keys, unless the window is a password prompt: those stop here."""
        try:
            if window != self._window:
                self._window = window
                # Cut as the service would (app 200, title 300): a long title in a wide
                # script must not push a message past the socket's line limit.
                self._send(sock, ["w", window.app[:200], window.title[:300], window.password,
                                  window.window_id])  # fmt: skip
            if not window.password:
                for start in range(0, len(keys), MAX_BATCH):
                    self._send(sock, ["k", keys[start : start + MAX_BATCH]])
        except OSError:
            pass  # the service went away: the session loop reconnects, capture restarts

    def _report(self, message: list[object]) -> None:
        """A notice report (from the notice's thread), to the service if it is connected."""
        sock = self._sock
        if sock is None:
            return  # the next connection's offer reports the showing again
        with contextlib.suppress(OSError):  # gone: the session loop reconnects
            self._send(sock, message)

    def _send(self, sock: socket.socket, message: list[object]) -> None:
        with self._send_lock:
            sock.sendall(encode(message))


def run_helper(path: Path, stop: threading.Event) -> int:
    helper = Helper(path)

    def relay() -> None:
        stop.wait()
        helper.stop()

    threading.Thread(target=relay, name="helper-stop", daemon=True).start()
    return helper.run()
