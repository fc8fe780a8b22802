"""The evidence outbox: sealed screenshots waiting to be uploaded, in a folder beside the event
outbox (`<state>/evidence/`), one file per event: `<event_id>.sgev`.

- written whole or not at all (a temporary name, fsync, rename), so the uploader never sends
  half a file and a power cut leaves at most a `.tmp` that the next start removes;
- bounded by the policy's `budget_mb`: past it the oldest files go (the collector being down
  for days must not fill an old PC's disk) and each is counted as a screenshot dropped;
- a full disk refuses the new file (counted too); the event is still queued without the hash,
  as agent/full_disk.py keeps events going on a full disk.

The files are ciphertext (protos/evidence.py): the PC cannot read them back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from agent.full_disk import is_disk_full

log = logging.getLogger(__name__)

SUFFIX = ".sgev"
MB = 1024 * 1024


@dataclass(frozen=True)
class Waiting:
    path: Path
    event_id: str
    size: int


class EvidenceFull(Exception):
    """The disk refused a sealed file (full): the screenshot is not kept."""


class EvidenceStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        try:  # a full disk at start must not stop the agent: put() tries again
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            for left in folder.glob("*.tmp"):  # a write cut short by a crash or power cut
                left.unlink(missing_ok=True)
        except OSError as exc:
            log.error("evidence.folder_unusable path=%s detail=%s", folder, exc)

    def waiting(self) -> list[Waiting]:
        """Files waiting to upload, oldest first."""
        found = []
        if not self.folder.is_dir():
            return []
        for path in self.folder.glob(f"*{SUFFIX}"):
            try:
                st = path.stat()
            except FileNotFoundError:  # uploaded or dropped while we looked
                continue
            found.append((st.st_mtime_ns, path.name, Waiting(path, path.stem, st.st_size)))
        return [w for _, _, w in sorted(found)]

    def put(self, event_id: str, sealed: bytes, budget_mb: int) -> int:
        """Keep one sealed file; returns how many older ones were dropped to make room.
        EvidenceFull if the disk refused it; ValueError if it alone is over the budget."""
        budget = budget_mb * MB
        if len(sealed) > budget:
            raise ValueError(f"a screenshot of {len(sealed)} bytes is over the whole budget")
        with self._lock:
            dropped = self._make_room(budget - len(sealed))
            final = self.folder / f"{event_id}{SUFFIX}"
            tmp = final.with_suffix(".tmp")
            try:
                self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                with tmp.open("wb") as fh:
                    fh.write(sealed)
                    fh.flush()
                    os.fsync(fh.fileno())
                tmp.rename(final)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                if is_disk_full(exc):
                    raise EvidenceFull(str(exc)) from None
                raise
        return dropped

    def _make_room(self, room: int) -> int:
        waiting = self.waiting()
        total = sum(w.size for w in waiting)
        dropped = 0
        for oldest in waiting:
            if total <= room:
                break
            with contextlib.suppress(FileNotFoundError):
                oldest.path.unlink()
                dropped += 1
                log.warning("evidence.dropped event_id=%s bytes=%d reason=budget",
                            oldest.event_id, oldest.size)  # fmt: skip
            total -= oldest.size
        return dropped

    def remove(self, item: Waiting) -> None:
        with self._lock:
            item.path.unlink(missing_ok=True)

    def remove_event(self, event_id: str) -> None:
        with self._lock:
            (self.folder / f"{event_id}{SUFFIX}").unlink(missing_ok=True)

    def total_bytes(self) -> int:
        return sum(w.size for w in self.waiting())
