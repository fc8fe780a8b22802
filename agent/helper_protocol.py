"""The local socket between a per-login keyboard helper and the system service.

One Unix stream socket, `/run/safeguard-agent/keyboard.sock` (the systemd unit's
RuntimeDirectory, root-owned 0755, so only the service can create it; the socket itself is
0666 and the service decides who may talk by the peer's kernel credentials, SO_PEERCRED).
Messages are JSON arrays, one per line, at most `MAX_LINE` bytes:

    helper ─▶ service   ["hello", {"display": ":0", "session": "x11", "version": "..."}]
                        ["w", app, title, password, window_id]     focus moved to this window
                        ["k", [token, ...]]                        keys typed (agent/detector.py)
                        ["s", state, detail]                       "running" | "unavailable"
                        ["n", "shown", version, age_ms]            the notice is on screen
                        ["n", "ok" | "closed", version, age_ms]    ... and was dismissed
                        ["n", "failed", reason]                    ... could not be shown
    service ─▶ helper   ["notice", text, version]                  the monitoring notice
                        ["capture", on, reason]                    capture for this account?
                        ["restart", reason]                        over its memory limit (the
                                                                   watchdog): re-execute yourself

A side ignores messages of kinds it does not know, so an older helper just shows no notice.

Keys travel only through this socket (kernel memory), never to disk, and only while the
account's profile has keyboard capture on; the service matches them and forgets them.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

DEFAULT_SOCKET = Path("/run/safeguard-agent/keyboard.sock")
SOCKET_ENV = "SAFEGUARD_KEYBOARD_SOCKET"
MAX_LINE = 64 * 1024
MAX_BATCH = 512  # keys per "k" message


class ProtocolError(Exception):
    """The other side sent something that is not this protocol."""


def socket_path(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get(SOCKET_ENV)
    return Path(env) if env else DEFAULT_SOCKET


def encode(message: list[Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def decode(line: bytes) -> list[Any]:
    """One message; ProtocolError for anything else (and never another exception: the
    socket is 0666, so any local account can send any bytes)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError, UnicodeDecodeError and int()'s refusal of a
        # number of more than 4300 digits; RecursionError is "[[[[..." nested too deep.
        raise ProtocolError("not JSON") from None
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        raise ProtocolError("not a message")
    return message


class LineReader:
    """Lines from a socket, each at most MAX_LINE bytes; b"" at end of stream."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def lines(self) -> list[bytes] | None:
        """Read once (blocking, or until the socket's timeout) and return the complete
        lines; None when the peer closed the connection."""
        data = self._sock.recv(65536)
        if not data:
            return None
        self._buf += data
        out = []
        while (end := self._buf.find(b"\n")) >= 0:
            out.append(bytes(self._buf[:end]))
            del self._buf[: end + 1]
        if len(self._buf) > MAX_LINE:
            raise ProtocolError("line too long")
        return out


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel (Linux)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid
