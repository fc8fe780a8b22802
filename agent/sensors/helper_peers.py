"""The keyboard helpers connected to the broker, as processes: their pid (from the kernel,
SO_PEERCRED), one lock for writing to each, and how one is restarted when the watchdog
(agent/selfwatch.py) finds it over its memory limit.

Who restarts a helper: the helper itself. The service cannot start a process in a user's
desktop session (it has no display and is not the user), so it asks over the socket
(["restart", reason]) and the helper re-executes itself (agent/helper.py): same pid, same
session, fresh memory; it connects again within a second or two. A helper that has not gone
within `grace_s` of being asked (stuck, or an old version that does not know the message) is
sent SIGTERM by the service; it then comes back only where the desktop session restarts its
autostart entries (GNOME: X-GNOME-AutoRestart), and otherwise the broker's coverage check
reports the session as CAPTURE_MISSING after its grace period.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped,unused-ignore]  # stubs in dev extras only

from agent.helper_protocol import encode
from agent.sensors import HelperProcess

log = logging.getLogger(__name__)

RESTART_GRACE_S = 10.0  # a helper asked to restart has this long to go before SIGTERM


@dataclass
class Peer:
    conn: socket.socket
    pid: int
    account: str
    started: float  # the process's start time: a pid reused by another process is not it
    lock: threading.Lock = field(default_factory=threading.Lock)
    gone: threading.Event = field(default_factory=threading.Event)


class HelperPeers:
    def __init__(self, grace_s: float = RESTART_GRACE_S) -> None:
        self._grace_s = grace_s
        self._lock = threading.Lock()
        self._peers: dict[int, Peer] = {}  # id(conn) -> its helper

    def add(self, conn: socket.socket, pid: int, account: str) -> None:
        try:
            started = psutil.Process(pid).create_time()
        except psutil.Error:
            started = 0.0
        with self._lock:
            self._peers[id(conn)] = Peer(conn, pid, account, started)

    def remove(self, conn: socket.socket) -> None:
        with self._lock:
            peer = self._peers.pop(id(conn), None)
        if peer is not None:
            peer.gone.set()

    def send(self, conn: socket.socket, message: list[object]) -> None:
        """Write one message; the session's thread and the watchdog's may both write."""
        with self._lock:
            peer = self._peers.get(id(conn))
        if peer is None:
            conn.sendall(encode(message))
            return
        with peer.lock:
            conn.sendall(encode(message))

    def processes(self) -> list[HelperProcess]:
        with self._lock:
            peers = list(self._peers.values())
        return [HelperProcess(p.pid, p.account, "keyboard helper",
                              lambda reason, p=p: self.restart(p, reason))  # type: ignore[misc]
                for p in peers]  # fmt: skip

    def restart(self, peer: Peer, reason: str) -> None:
        """Ask the helper to restart itself; SIGTERM it if it is still there after grace_s."""
        log.warning("keyboard.helper_restart_asked account=%s pid=%d reason=%s", peer.account,
                    peer.pid, reason)  # fmt: skip
        try:
            self.send(peer.conn, ["restart", reason])
        except OSError:
            return  # it is already gone
        threading.Thread(target=self._ensure_gone, args=(peer,), daemon=True,
                         name="keyboard-restart").start()  # fmt: skip

    def _ensure_gone(self, peer: Peer) -> None:
        # Asked the kernel, not the session's thread: that thread may be busy for a while
        # (compiling the profile's matcher at its first key) and reads the end of stream late.
        deadline = time.monotonic() + self._grace_s
        while not (peer.gone.is_set() or _hung_up(peer.conn)):
            if time.monotonic() > deadline:
                self._terminate(peer)
                return
            peer.gone.wait(0.1)

    def _terminate(self, peer: Peer) -> None:
        try:
            process = psutil.Process(peer.pid)
            if peer.started and process.create_time() != peer.started:
                return  # the pid now belongs to another process
            os.kill(peer.pid, signal.SIGTERM)
        except (psutil.Error, OSError) as exc:
            log.warning("keyboard.helper_not_stopped account=%s pid=%d kind=%s", peer.account,
                        peer.pid, type(exc).__name__)  # fmt: skip
            return
        log.warning("keyboard.helper_terminated account=%s pid=%d (it did not restart itself "
                    "within %g s)", peer.account, peer.pid, self._grace_s)  # fmt: skip
        with contextlib.suppress(OSError):
            peer.conn.shutdown(socket.SHUT_RDWR)


def _hung_up(conn: socket.socket) -> bool:
    """Has the other end closed its socket? (POLLHUP is set on a Unix stream socket once the
    peer has closed, whatever unread data is still queued.)"""
    try:
        fd = conn.fileno()
        if fd < 0:
            return True
        poller = select.poll()
        poller.register(fd, select.POLLRDHUP)  # POLLHUP and POLLERR are always reported
        events = poller.poll(0)
    except (OSError, ValueError):
        return True
    return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in events)
