"""Opening a held screenshot for a DSL to see, as evidence: only the one an event names.

The event (signed, in its agent's chain) carries the SHA-256 of the sealed file; the seal binds
the image to its agent and event (protos/evidence.py). So a file is shown only if its hash is
the event's and it opens with the collector's evidence key for that agent and event. Anything
else is a tampering record (kind "screenshot"): a file changed or swapped on the collector's
disk, or an agent that sealed something other than what its event names. The image is
decrypted in memory for the answer and never written out.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import duckdb

from collector import pki
from collector.paths import DataDir
from collector.storage.store import Store, now_ms
from protos import evidence

log = logging.getLogger(__name__)

TAMPER_KIND = "screenshot"
# What a browser may be handed, by the image's first bytes; nothing else is served.
_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"RIFF", "image/webp"))  # fmt: skip


class Unshowable(ValueError):
    """A screenshot that cannot be shown as evidence; the message says why, for the DSL."""


@dataclass(frozen=True)
class Wanted:
    """A screenshot as an incident's event names it."""

    agent_id: str
    seq: int
    event_id: str
    sha256: str


def held_path(con: duckdb.DuckDBPyConnection, w: Wanted) -> str | None:
    row = con.execute("SELECT path FROM screenshots WHERE agent_id = ? AND sha256 = ?",
                      [w.agent_id, w.sha256]).fetchone()  # fmt: skip
    return str(row[0]) if row else None


def open_image(data: DataDir, w: Wanted, path: str) -> tuple[bytes, str]:
    """(image bytes, content type) of the held file; Unshowable says why not."""
    try:
        sealed = (data.root / path).read_bytes()
    except OSError:
        raise Unshowable("The screenshot's file is missing from the collector's disk, though "
                         "it was received: it has been deleted or moved.") from None  # fmt: skip
    if hashlib.sha256(sealed).hexdigest() != w.sha256:
        raise Unshowable("The screenshot on the collector's disk is not the one the event "
                         "names (its SHA-256 differs): it has been changed or replaced, so it "
                         "is not shown.")  # fmt: skip
    try:
        image = evidence.open_sealed(pki.load_evidence_key(data), sealed, w.agent_id, w.event_id)
    except evidence.EvidenceError:
        raise Unshowable("The screenshot does not open with this collector's evidence key for "
                         "this PC and event: it was sealed for another event or key, or "
                         "damaged, so it is not shown.") from None  # fmt: skip
    for magic, ctype in _TYPES:
        if image.startswith(magic):
            return image, ctype
    raise Unshowable("The screenshot opened but is not a PNG, JPEG or WebP image, so it is "
                     "not shown.")  # fmt: skip


def record_tampering(store: Store, w: Wanted, why: str) -> bool:
    """One tampering record per screenshot that failed (a DSL may look again and again);
    True if this was the first."""
    detail = f"screenshot {w.sha256} of event {w.event_id}: {why}"
    seen = store.con.execute(
        "SELECT 1 FROM tampering WHERE agent_id = ? AND kind = ? AND detail = ?",
        [w.agent_id, TAMPER_KIND, detail],
    ).fetchone()
    if seen is None:
        store.add_tampering([(w.agent_id, TAMPER_KIND, detail, w.seq, w.seq, now_ms(), None)])
        log.warning("screenshot.unshowable agent=%s seq=%d", w.agent_id, w.seq)
        return True
    return False
