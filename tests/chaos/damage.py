"""Bytes flipped at random offsets of a stopped agent's outbox `-wal`, and what that may cost.

What the count may lose (the invariant the tests hold):

* `superseded` damage falls only on frames of the current log whose page has a newer image in
  a later *committed* frame. SQLite still stops replaying at the first bad frame, so without
  the agent's own reading (agent/outbox_wal.py) every commit after it would be lost; with it,
  every row is in an intact frame, so nothing may be lost: produced == stored.
* `anywhere` damage falls anywhere in the file, the log's header included. A row whose only
  image was in a damaged frame cannot be read back by anyone, so the count allows losing
  exactly those: every lost id must appear in a damaged frame and nowhere intact (the db file,
  an undamaged frame). Any other loss is a bug.
"""

from __future__ import annotations

import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path

HEADER, FRAME_HEADER = 32, 24
_ID = re.compile(rb"[0-9a-f]{32}")


@dataclass(frozen=True)
class Frame:
    index: int
    offset: int
    page: int
    commit: bool


def frames(wal: bytes) -> tuple[int, list[Frame]]:
    """(frame size, the frames of the current log), as the salts in their headers say."""
    if len(wal) < HEADER:
        return 0, []
    page_size = struct.unpack(">I", wal[8:12])[0]
    page_size = 65536 if page_size == 1 else page_size
    salts = wal[16:24]
    size = FRAME_HEADER + page_size
    out = []
    for i, offset in enumerate(range(HEADER, len(wal) - size + 1, size)):
        page, commit = struct.unpack(">II", wal[offset : offset + 8])
        if wal[offset + 8 : offset + 16] != salts:
            break  # an older log's frames beyond the current one
        out.append(Frame(i, offset, page, commit != 0))
    return size, out


def superseded(all_frames: list[Frame]) -> list[Frame]:
    """Frames whose page has a newer image in a later committed frame."""
    last_commit = max((f.index for f in all_frames if f.commit), default=-1)
    newest: dict[int, int] = {}
    for f in all_frames:
        if f.index <= last_commit:
            newest[f.page] = f.index
    return [f for f in all_frames if f.index < newest.get(f.page, -1)]


@dataclass
class Damage:
    offsets: list[int]
    frames: list[int]  # indices of the frames hit
    at_risk: set[str]  # ids whose only images were in damaged frames


def flip(wal_path: Path, db_path: Path, rng: random.Random, count: int,
         where: str = "superseded") -> Damage | None:
    """Flip `count` bytes of the -wal; None when there is nothing of that kind to damage."""
    original = wal_path.read_bytes()
    data = bytearray(original)
    size, all_frames = frames(bytes(data))
    if where == "superseded":
        targets = superseded(all_frames)
        if not targets:
            return None
        offsets = [f.offset + rng.randrange(size) for f in (rng.choice(targets)
                                                             for _ in range(count))]
    elif where == "anywhere":
        if len(data) <= HEADER:
            return None
        offsets = [rng.randrange(len(data)) for _ in range(count)]
    else:
        raise ValueError(where)
    for offset in offsets:
        data[offset] ^= rng.randrange(1, 256)
    hit = sorted({(o - HEADER) // size for o in offsets if o >= HEADER and size})
    intact = bytearray(data)
    for index in hit:
        start = HEADER + index * size
        intact[start : start + size] = b"\0" * size
    everywhere_else = set(_ID.findall(bytes(intact))) | set(_ID.findall(db_path.read_bytes()))
    damaged = set()
    for index in hit:
        start = HEADER + index * size
        damaged |= set(_ID.findall(original[start : start + size]))  # before the flips
    wal_path.write_bytes(bytes(data))
    return Damage(offsets, hit, {i.decode() for i in damaged - everywhere_else})
