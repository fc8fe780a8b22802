"""A TCP proxy between agent and collector that the test steers: the network's bad days.

    agent ──TLS──▶ Proxy(127.0.0.1:p) ──▶ collector(127.0.0.1:c)

Modes, for every connection at once (new ones included):
    PASS       bytes flow as they come
    DELAY      each chunk is held `delay_s` before it is passed on (a slow link)
    STALL      bytes are held, in order, and all delivered when the mode changes (a link that
               stops and comes back before TCP gives up)
    BLACKHOLE  connections are accepted, nothing is forwarded, what arrives is dropped; when the
               mode changes they are closed (a partition long enough for TCP to give up)
`cut()` closes both sides of every open connection mid-stream (a NAT or firewall reset).

Threads, not asyncio: each connection is two pumps, each blocking on its own socket.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import select
import socket
import threading
import time

log = logging.getLogger(__name__)


class Mode(enum.Enum):
    PASS = "pass"
    DELAY = "delay"
    STALL = "stall"
    BLACKHOLE = "blackhole"


class Proxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self._listener = socket.create_server((host, 0))
        self.port = self._listener.getsockname()[1]
        self.address = f"{host}:{self.port}"
        self._mode = Mode.PASS
        self.delay_s = 0.0
        self._changed = threading.Condition()
        self._pairs: list[tuple[socket.socket, socket.socket, Mode]] = []
        self._closed = False
        self.connections = 0  # accepted so far: a test can wait for the agent to come back
        self.bytes_forwarded = 0
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode, delay_s: float = 0.0) -> None:
        with self._changed:
            was, self._mode, self.delay_s = self._mode, mode, delay_s
            self._changed.notify_all()
            if mode is Mode.BLACKHOLE:  # open connections fall into the hole too
                self._pairs = [(a, b, Mode.BLACKHOLE) for a, b, _ in self._pairs]
            elif was is Mode.BLACKHOLE:
                self._close_pairs(only=Mode.BLACKHOLE)
        log.info("proxy.mode mode=%s delay_s=%.2f", mode.value, delay_s)

    def cut(self) -> int:
        """Close every open connection mid-stream; returns how many were cut."""
        with self._changed:
            return self._close_pairs(only=None)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            self._close_pairs(only=None)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close does not
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(10)

    def _close_pairs(self, only: Mode | None) -> int:
        keep, cut = [], 0
        for pair in self._pairs:
            if only is None or pair[2] is only:
                for sock in pair[:2]:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    with contextlib.suppress(OSError):
                        sock.close()
                cut += 1
            else:
                keep.append(pair)
        self._pairs = keep
        return cut

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with self._changed:
                mode = self._mode
            if mode is Mode.BLACKHOLE:
                # Accepted, never answered: the agent's handshake waits for nothing.
                with self._changed:
                    self._pairs.append((client, client, Mode.BLACKHOLE))
                threading.Thread(target=self._drain, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the collector is down: refused, as it would be directly
                continue
            with self._changed:
                self._pairs.append((client, upstream, Mode.PASS))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _drain(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([src], [], [], 0.5)
                if self._closed:
                    return
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                if not self._pass_on():
                    continue  # black-holed: dropped
                dst.sendall(data)
                self.bytes_forwarded += len(data)
        except (OSError, ValueError):
            # Cut, or the other side went away; ValueError when `cut` closed the socket between
            # two selects (its descriptor is then -1).
            return

    def _pass_on(self) -> bool:
        """Hold the chunk as the mode says; False to drop it."""
        with self._changed:
            while self._mode is Mode.STALL and not self._closed:
                self._changed.wait(0.5)
            mode, delay = self._mode, self.delay_s
        if mode is Mode.BLACKHOLE:
            return False
        if mode is Mode.DELAY:
            time.sleep(delay)
        return True
