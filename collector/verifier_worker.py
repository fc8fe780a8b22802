"""A verifier process: signed batches in on stdin, their event rows (Arrow) out on stdout.

Checking a batch (its signature, its chain, decoding each event) is pure Python work per
event; in the collector's own process it held the GIL for about a third of the collector's
time, and one process could not use a second core. `collector/verifiers.py` runs a few of
these and hands each batch to one. Nothing here touches the database or any state: a batch is
checked on its own terms, in the order it arrived, and the answer goes back on the same pipe.

Frames, both ways, are a 5-byte header (status or kind, body length) and a body:
    request  kind 0, body = public key (32) | nonce (16) | Batch bytes
    answer   OK, body = Arrow IPC stream of the batch's rows (collector/event_table.py)
             REFUSED, body = "reason: detail" (protos/envelope.py's EnvelopeError)
             FAILED, body = what went wrong here (a fault of ours, not the agent's)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import struct
import sys
from typing import BinaryIO

import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector import event_table
from protos import envelope, ingest_pb2

log = logging.getLogger("collector.verifier")

HEADER = struct.Struct(">BI")
REQUEST, OK, REFUSED, FAILED = 0, 1, 2, 3
KEY_LEN = 32
KEYS_CACHED = 4096  # one parsed key per agent streaming; a trust's PCs fit


def request(public_key: bytes, nonce: bytes, batch: bytes) -> bytes:
    if len(public_key) != KEY_LEN or len(nonce) != envelope.NONCE_LEN:
        raise ValueError("a verifier request needs a 32-byte key and a 16-byte nonce")
    return HEADER.pack(REQUEST, KEY_LEN + len(nonce) + len(batch)) + public_key + nonce + batch


def check(public_key: Ed25519PublicKey, nonce: bytes, batch_bytes: bytes) -> pa.Table:
    """The rows of one batch, or EnvelopeError saying why it is refused."""
    try:
        batch = ingest_pb2.Batch.FromString(batch_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise envelope.EnvelopeError(f"malformed: the batch does not parse: {exc}") from None
    return event_table.from_checked(envelope.check_batch(batch, public_key, nonce, batch_bytes))


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def from_ipc(body: bytes) -> pa.Table:
    return pa.ipc.open_stream(body).read_all()


class KeyCache:
    """Parsed public keys by raw bytes: parsing one costs about as much as a batch's chain."""

    def __init__(self) -> None:
        self._keys: dict[bytes, Ed25519PublicKey] = {}

    def get(self, raw: bytes) -> Ed25519PublicKey:
        key = self._keys.get(raw)
        if key is None:
            if len(self._keys) >= KEYS_CACHED:
                self._keys.clear()
            key = self._keys[raw] = envelope.public_key_from_raw(raw)
        return key


def answer(keys: KeyCache, body: bytes) -> tuple[int, bytes]:
    nonce_end = KEY_LEN + envelope.NONCE_LEN
    try:
        table = check(keys.get(body[:KEY_LEN]), body[KEY_LEN:nonce_end], body[nonce_end:])
        return OK, to_ipc(table)
    except envelope.EnvelopeError as exc:
        return REFUSED, str(exc).encode()
    except Exception as exc:  # a bug of ours: say so, and keep serving the other batches
        log.exception("verifier.failed")
        return FAILED, f"{type(exc).__name__}: {exc}".encode()


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Answer requests in order until the collector closes the pipe."""
    keys = KeyCache()
    while True:
        head = inp.read(HEADER.size)
        if len(head) < HEADER.size:
            return
        kind, size = HEADER.unpack(head)
        body = inp.read(size)
        if kind != REQUEST or len(body) < size:
            raise SystemExit(f"verifier: bad request frame (kind {kind}, {len(body)}/{size} bytes)")
        status, reply = answer(keys, body)
        out.write(HEADER.pack(status, len(reply)))
        out.write(reply)
        out.flush()


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    # Ctrl-C and systemd's stop reach the whole process group; the collector is still finishing
    # its in-flight batches then, so stop only when it closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The frames own the stdout pipe: keep a private copy of it and point fd 1 at stderr, so
    # nothing printed by a library can corrupt a frame.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.suppress(BrokenPipeError):  # the collector went away: nothing is owed
        serve(sys.stdin.buffer, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
