"""A local admin socket, so CLI commands work while `serve` holds the database.

DuckDB lets one process write a database file. The running collector listens on a Unix socket
in its data folder (0700 folder, 0600 socket) and checks each caller's uid: root or the
collector's own account. One JSON request per connection, one JSON answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

from collector import operations
from collector.intake.ingest import Ingestor
from collector.paths import DataDir
from collector.storage.store import DatabaseError

log = logging.getLogger(__name__)

# A roster import carries its CSV files (a large primary's MIS and directory exports: a few
# hundred KB); only the collector's own user (or root) may connect.
MAX_REQUEST = 4 * 1024 * 1024


class AdminError(RuntimeError):
    pass


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


async def serve(data: DataDir, ingestor: Ingestor) -> asyncio.AbstractServer:
    path = data.admin_socket
    path.unlink(missing_ok=True)  # a socket left by a killed collector
    allowed = {0, os.getuid()}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = _peer_uid(sock)
            if uid not in allowed:
                log.warning("admin.refused uid=%d", uid)
                reply: dict[str, Any] = {"error": "permission denied"}
            else:
                reply = await _answer(await reader.readline(), data, ingestor)
            writer.write(json.dumps(reply, default=_jsonable).encode() + b"\n")
            await writer.drain()
        except ConnectionError:  # the client went away (Ctrl-C on a CLI command): nothing to do
            log.info("admin.client_gone")
        finally:
            writer.close()

    old_umask = os.umask(0o177)  # the socket is born 0600
    try:
        server = await asyncio.start_unix_server(handle, path=str(path), limit=MAX_REQUEST)
    finally:
        os.umask(old_umask)
    return server


async def _answer(line: bytes, data: DataDir, ingestor: Ingestor) -> dict[str, Any]:
    try:
        request = json.loads(line)
        op, args = request["op"], request.get("args", {})
        if op in operations.READS:  # long reads off the writer: ingest goes on meanwhile
            con = await asyncio.wrap_future(ingestor.call(lambda store: store.reader()))
            try:
                result = await asyncio.to_thread(operations.READS[op], con, data, args)
            finally:
                con.close()
            return {"result": result}
        result = await asyncio.wrap_future(
            ingestor.call(
                lambda store: operations.run(store, data, op, args),
                changes_agents=op in operations.CHANGES_AGENTS,
            )
        )
    except (ValueError, KeyError, TypeError, DatabaseError) as exc:
        return {"error": str(exc)}
    return {"result": result}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot encode {type(value).__name__}")


def request(path: Path, op: str, args: dict[str, Any], timeout: float = 120.0) -> Any:
    """Ask a running collector. Raises ConnectionError when none is listening."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    reply = json.loads(b"".join(chunks))
    if "error" in reply:
        raise AdminError(reply["error"])
    return reply["result"]
