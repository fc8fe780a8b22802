"""A verifier process: signed batches in on stdin, their event rows (Arrow) out on stdout.

Checking a batch (its signature, its chain, decoding each event) is pure Python work per
event; in the collector's own process it held the GIL for about a third of the collector's
time, and one process could not use a second core. `collector/intake/verifiers.py` runs a few of
these and hands each batch to one. Nothing here touches the database or any state: a batch is
checked on its own terms, in the order it arrived, and the answer goes back on the same pipe.

Frames, both ways, are a 5-byte header (status or kind, body length) and a body:
    request  kind 0, body = public key (32) | nonce (16) | Batch bytes
    answer   OK, body = Arrow IPC stream of the batch's rows (collector/intake/event_table.py), each
             event's strings checked (protos/event_fields.py; `malformed` says what broke)
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
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector.intake import event_table, vocabulary
from protos import envelope, event_fields, events_pb2, ingest_pb2

log = logging.getLogger("collector.verifier")

HEADER = struct.Struct(">BI")
REQUEST, OK, REFUSED, FAILED = 0, 1, 2, 3
KEY_LEN = 32
KEYS_CACHED = 4096  # one parsed key per agent streaming; a trust's PCs fit


def request(public_key: bytes, nonce: bytes, batch: bytes) -> bytes:
    if len(public_key) != KEY_LEN or len(nonce) != envelope.NONCE_LEN:
        raise ValueError("a verifier request needs a 32-byte key and a 16-byte nonce")
    return HEADER.pack(REQUEST, KEY_LEN + len(nonce) + len(batch)) + public_key + nonce + batch


def check(
    public_key: Ed25519PublicKey, nonce: bytes, batch_bytes: bytes,
    words: vocabulary.Reader | None = None,
) -> pa.Table:  # fmt: skip
    """The rows of one batch, or EnvelopeError saying why it is refused. Each event's strings
    are checked against `words` (default: the shipped policy's) and the contract in
    protos/event_fields.py; one that breaks it is marked (`malformed`), not refused: the batch
    is signed and chained, so it is stored whole and the event kept as evidence."""
    try:
        batch = ingest_pb2.Batch.FromString(batch_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise envelope.EnvelopeError(f"malformed: the batch does not parse: {exc}") from None
    checked = envelope.check_batch(batch, public_key, nonce, batch_bytes)
    return event_table.from_checked(checked, malformed(checked.events, words or _shipped()))


def malformed(events: list[events_pb2.Event], words: vocabulary.Reader) -> list[str | None] | None:
    """Per event, the field an honest agent never sends and why; None when all are sound."""
    known = words.current()
    found = [event_fields.flaw(e, known) for e in events]
    if not any(found):
        return None
    # A policy published since the file was last read may define the name: read it again.
    if (fresh := words.refreshed()) is not known:
        pairs = zip(events, found, strict=True)
        found = [event_fields.flaw(e, fresh) if f else None for e, f in pairs]
    return found if any(found) else None


_default: list[vocabulary.Reader] = []


def _shipped() -> vocabulary.Reader:
    """A verifier run without the collector's file (tests): the shipped policy's names."""
    if not _default:
        _default.append(vocabulary.Reader(None))
    return _default[0]


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


def answer(
    keys: KeyCache, body: bytes, words: vocabulary.Reader | None = None
) -> tuple[int, bytes]:
    nonce_end = KEY_LEN + envelope.NONCE_LEN
    try:
        table = check(keys.get(body[:KEY_LEN]), body[KEY_LEN:nonce_end], body[nonce_end:], words)
        return OK, to_ipc(table)
    except envelope.EnvelopeError as exc:
        return REFUSED, str(exc).encode()
    except Exception as exc:  # a bug of ours: say so, and keep serving the other batches
        log.exception("verifier.failed")
        return FAILED, f"{type(exc).__name__}: {exc}".encode()


def serve(inp: BinaryIO, out: BinaryIO, words: vocabulary.Reader | None = None) -> None:
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
        status, reply = answer(keys, body, words)
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
    # The file of names events may carry (collector/intake/vocabulary.py), if the collector
    # gave one.
    words = vocabulary.Reader(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    with contextlib.suppress(BrokenPipeError):  # the collector went away: nothing is owed
        serve(sys.stdin.buffer, out, words)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
