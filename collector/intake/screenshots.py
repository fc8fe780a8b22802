"""Screenshots arriving from PCs (Collector.PutEvidence), kept sealed as they were sent.

An agent sends a sealed screenshot (protos/evidence.py) in signed chunks of at most 1 MiB, in
order: each chunk starts where the collector's copy ends (`have`), so an upload cut off by a
dropped connection or a restart resumes where it stopped. The unfinished file lives at
DATA/screenshots/<agent>/<sha256>.part; once it is whole and its SHA-256 is what the agent
said, it becomes <sha256>.sealed and a row in the `screenshots` table. Nothing here opens a
seal: the collector decrypts one only when a DSL looks (collector/integrity/screenshots.py).

Bounds, so a PC (or a stolen agent key) cannot fill the disk: a file over MAX_FILE is refused,
an agent has at most MAX_UNFINISHED files part-sent and MAX_AGENT_BYTES held in all, and a
chunk must fit the size it names.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from collector.paths import DataDir, make_private_dir
from collector.storage.store import Store, now_ms
from protos import ingest_pb2

log = logging.getLogger(__name__)

MAX_FILE = 8 * 1024 * 1024 + 1024  # an image of protos.evidence.MAX_IMAGE, sealed
MAX_CHUNK = 1024 * 1024
MAX_UNFINISHED = 4  # part-sent files per agent; an agent sends one at a time
# Everything one PC may have held at once (its budget on the PC is 20 MB by default): a
# stolen agent key cannot fill the disk with whole files either. Retention frees room.
MAX_AGENT_BYTES = 256 * 1024 * 1024
_SHA = re.compile(r"^[0-9a-f]{64}$")
_EVENT_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class Refused(ValueError):
    """A chunk not taken, with the sentence the agent's log shows; `kind`: the gRPC status
    name that fits (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, DATA_LOSS)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Held:
    agent_id: str
    event_id: str
    sha256: str
    size: int
    received_ms: int
    path: str  # relative to the data folder


def agent_dir(data: DataDir, agent_id: str) -> Path:
    return data.screenshots_dir / agent_id


def sealed_path(data: DataDir, agent_id: str, sha256: str) -> Path:
    return agent_dir(data, agent_id) / f"{sha256}.sealed"


def _part_path(data: DataDir, agent_id: str, sha256: str) -> Path:
    return agent_dir(data, agent_id) / f"{sha256}.part"


def check_chunk(chunk: ingest_pb2.EvidenceChunk) -> None:
    """Refuse a chunk whose fields cannot describe a screenshot, before touching the disk."""
    if not _SHA.match(chunk.sha256):
        raise Refused("INVALID_ARGUMENT", "sha256 must be 64 lower-case hex digits")
    if not _EVENT_ID.match(chunk.event_id):
        raise Refused("INVALID_ARGUMENT", "event_id must be the event's id (letters and digits)")
    if not 0 < chunk.size <= MAX_FILE:
        raise Refused("INVALID_ARGUMENT", f"a screenshot of {chunk.size} bytes is refused: "
                                          f"the limit is {MAX_FILE} bytes")  # fmt: skip
    if len(chunk.data) > MAX_CHUNK:
        raise Refused("INVALID_ARGUMENT", f"a chunk carries at most {MAX_CHUNK} bytes")
    if not chunk.data or chunk.offset < 0 or chunk.offset + len(chunk.data) > chunk.size:
        raise Refused("INVALID_ARGUMENT", f"a chunk of {len(chunk.data)} bytes at offset "
                                          f"{chunk.offset} does not fit a file of {chunk.size}"
                                          " bytes")  # fmt: skip


def have(data: DataDir, agent_id: str, sha256: str) -> tuple[int, bool]:
    """(bytes held, whole): what an agent resumes from."""
    sealed = sealed_path(data, agent_id, sha256)
    if sealed.exists():
        return sealed.stat().st_size, True
    part = _part_path(data, agent_id, sha256)
    return (part.stat().st_size if part.exists() else 0), False


def write_chunk(data: DataDir, chunk: ingest_pb2.EvidenceChunk) -> tuple[int, bool]:
    """Append a checked chunk to its agent's part file. Returns (have, whole): whole when the
    file is complete and its SHA-256 matches (then it is <sha>.sealed). A chunk that is not
    where the copy ends is not written; the answer says where to send from."""
    held, whole = have(data, chunk.agent_id, chunk.sha256)
    if whole:
        return held, True
    if chunk.offset != held:
        return held, False  # a repeat after a lost answer, or a gap: the agent sends from `held`
    folder = agent_dir(data, chunk.agent_id)
    part = _part_path(data, chunk.agent_id, chunk.sha256)
    if held == 0:
        make_private_dir(data.screenshots_dir)
        make_private_dir(folder)
        unfinished = sum(1 for _ in folder.glob("*.part"))
        if unfinished >= MAX_UNFINISHED:
            raise Refused("RESOURCE_EXHAUSTED", f"this PC already has {unfinished} screenshots "
                                                "part-sent: finish those first")  # fmt: skip
        held_bytes = sum(f.stat().st_size for f in folder.iterdir())
        if held_bytes + chunk.size > MAX_AGENT_BYTES:
            log.warning("screenshot.agent_full agent=%s bytes=%d", chunk.agent_id, held_bytes)
            why = (f"the collector holds {held_bytes // 2**20} MiB of this PC's screenshots, "
                   "its limit: the PC keeps this one until retention frees room")
            raise Refused("RESOURCE_EXHAUSTED", why)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as f:
        f.write(chunk.data)
        f.flush()
        os.fsync(f.fileno())
    held += len(chunk.data)
    if held < chunk.size:
        return held, False
    digest = hashlib.sha256(part.read_bytes()).hexdigest()
    if digest != chunk.sha256 or held != chunk.size:
        part.unlink()
        log.warning("screenshot.mismatch agent=%s event=%s said=%s got=%s", chunk.agent_id,
                    chunk.event_id, chunk.sha256[:16], digest[:16])  # fmt: skip
        raise Refused("DATA_LOSS", "the screenshot's SHA-256 is not the one its chunks named; "
                                   "nothing was kept (send it again from the start)")  # fmt: skip
    part.replace(sealed_path(data, chunk.agent_id, chunk.sha256))
    return held, True


def record(store: Store, data: DataDir, chunk: ingest_pb2.EvidenceChunk) -> Held:
    """The row for a whole screenshot (on the writer thread); kept once, whatever repeats."""
    path = sealed_path(data, chunk.agent_id, chunk.sha256).relative_to(data.root)
    held = Held(chunk.agent_id, chunk.event_id, chunk.sha256, chunk.size, now_ms(), str(path))
    store.con.execute(
        "INSERT INTO screenshots VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [held.agent_id, held.event_id, held.sha256, held.size, held.received_ms, held.path],
    )
    return held
