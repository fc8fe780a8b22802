"""What the shipper last met, kept in the state folder for `safeguard-agent status`.

    state/shipping.json  {"last_error": {"at_ms", "why", "resolved_ms"} | null,
                          "last_session_ms": int | null,
                          "clock": {"skew_ms", "limit_ms", "measured_ms"} | null,
                          "checkpoint": the collector's last signed checkpoint (JSON text)}

The service's shipper writes it (atomically: a temporary file, then a rename) when a session
fails and when one opens; status reads it and never writes. A session that opens marks the
last error resolved rather than erasing it, so a technician still sees what happened. Times
are this PC's clock. Nothing typed or detected is ever in it: only the shipper's own words.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from protos.skew import DEFAULT_LIMIT_MS, describe

log = logging.getLogger(__name__)


class ShippingState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._doc = read(path)

    def error(self, why: str, at_ms: int) -> None:
        self._doc["last_error"] = {"at_ms": at_ms, "why": why[:1000], "resolved_ms": None}
        self._write()

    def session(self, at_ms: int, skew_ms: int | None, limit_ms: int) -> None:
        """A session opened at at_ms; the collector measured skew_ms (None: it did not)."""
        self._doc["last_session_ms"] = at_ms
        error = self._doc.get("last_error")
        if isinstance(error, dict) and error.get("resolved_ms") is None:
            error["resolved_ms"] = at_ms
        if skew_ms is not None:
            self._doc["clock"] = {"skew_ms": skew_ms, "limit_ms": limit_ms, "measured_ms": at_ms}
        self._write()

    def witness(self, checkpoint: bytes) -> None:
        """Keep the collector's latest signed checkpoint, to hand back at the next Hello."""
        text = checkpoint.decode("utf-8", "replace")[:4000]
        if text and self._doc.get("checkpoint") != text:
            self._doc["checkpoint"] = text
            self._write()

    def witnessed(self) -> bytes:
        found = self._doc.get("checkpoint")
        return found.encode() if isinstance(found, str) else b""

    def clock(self) -> tuple[int, int] | None:
        """(skew_ms, limit_ms) as last measured, if ever."""
        found = self._doc.get("clock")
        if not isinstance(found, dict):
            return None
        try:
            return int(found["skew_ms"]), int(found["limit_ms"])
        except (KeyError, TypeError, ValueError):
            return None

    def _write(self) -> None:
        temp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps(self._doc))
            temp.replace(self.path)
        except OSError as exc:  # a full disk: status shows less, shipping goes on
            log.warning("shipping_state.not_written path=%s detail=%s", self.path, exc)


def read(path: Path) -> dict[str, Any]:
    """The file's contents; empty when it is missing or damaged (status says so)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def status_lines(doc: dict[str, Any]) -> list[str]:
    """What `safeguard-agent status` says about shipping, from the file's contents."""
    session = doc.get("last_session_ms")
    lines = [f"last_session: {_when(session) if session else 'none recorded'}"]
    error = doc.get("last_error")
    if isinstance(error, dict) and error.get("why"):
        resolved = error.get("resolved_ms")
        after = (f"  (resolved: a session opened at {_when(resolved)})" if resolved
                 else "  (not resolved: no session has opened since)")  # fmt: skip
        lines.append(f"last_error:   {_when(error.get('at_ms'))}: {error['why']}{after}")
    else:
        lines.append("last_error:   none recorded")
    found = doc.get("clock")
    if isinstance(found, dict) and isinstance(found.get("skew_ms"), int):
        skew, limit = found["skew_ms"], int(found.get("limit_ms") or DEFAULT_LIMIT_MS)
        verdict = (f"beyond the collector's limit of {limit // 1000} s: set the PC's clock (NTP); "
                   "its events are flagged and exemptions are judged by the collector's time"
                   if abs(skew) > limit else f"within the collector's limit of {limit // 1000} s")
        lines.append(f"clock_skew:   {skew / 1000:+.0f} s ({describe(skew)} of the collector), "
                     f"measured at {_when(found.get('measured_ms'))}; {verdict}")  # fmt: skip
    else:
        lines.append("clock_skew:   not measured yet (the collector measures it each connection)")
    return lines


def _when(ms: object) -> str:
    if not isinstance(ms, int):
        return "?"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
