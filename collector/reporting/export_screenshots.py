"""Screenshots in a CPOMS export, when the DSL ticks "include screenshots" (off by default).

Each evidence line names the screenshot its event carries (the SHA-256 of the sealed file,
signed in the event); with screenshots included, the held ones are opened now, as the
screenshot page opens them (collector/integrity/screenshots.py), and the PDF embeds each image
under the evidence table while the CSV and JSON name its file. One that is not held, or does
not open as the event's, is said so on its line and not included.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, Spacer

from collector.integrity import screenshots
from collector.integrity.screenshots import Unshowable, Wanted
from collector.paths import DataDir

WIDTH = 170 * mm  # an A4 page's text width with the export's margins


@dataclass
class Included:
    images: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # sha -> image, type
    unshown: dict[str, str] = field(default_factory=dict)  # sha -> why it is not included
    failed: list[tuple[Wanted, str]] = field(default_factory=list)  # for tampering records


def wanted(inc: dict[str, Any]) -> list[Wanted]:
    """The screenshots the incident's events name."""
    return [Wanted(s["agent_id"], int(s["seq"]), str(s["event"].get("event_id", "")),
                   s["screenshot"]) for s in inc["evidence"] if s.get("screenshot")]  # fmt: skip


def gather(con: Any, data: DataDir, inc: dict[str, Any]) -> Included:
    """Open every screenshot the incident names that the collector holds."""
    out = Included()
    for w in wanted(inc):
        path = screenshots.held_path(con, w)
        if path is None:
            out.unshown[w.sha256] = "not received yet"
            continue
        try:
            out.images[w.sha256] = screenshots.open_image(data, w, path)
        except Unshowable as exc:
            out.unshown[w.sha256] = str(exc)
            out.failed.append((w, str(exc)))
    return out


def file_name(sha: str, ctype: str) -> str:
    return f"screenshot-{sha[:16]}.{ctype.rpartition('/')[2]}"


def annotate(rec: dict[str, Any], got: Included | None) -> None:
    """Each evidence line's screenshot: its hash, and whether this export includes it."""
    for line in rec["evidence"]:
        sha = line.get("screenshot_sha256", "")
        if not sha:
            line["screenshot"] = ""
        elif got is None:
            line["screenshot"] = "held by the collector; not included in this export"
        elif sha in got.images:
            line["screenshot"] = f"included: {file_name(sha, got.images[sha][1])}"
        else:
            line["screenshot"] = f"not included: {got.unshown.get(sha, 'not received yet')}"


def pdf_flowables(rec: dict[str, Any], got: Included, style: Any) -> list[Any]:
    """The images, each under a line naming its event and file, scaled to the page width."""
    out: list[Any] = []
    for line in rec["evidence"]:
        sha = line.get("screenshot_sha256", "")
        if sha not in got.images:
            continue
        image, ctype = got.images[sha]
        picture = Image(io.BytesIO(image))
        scale = min(1.0, WIDTH / picture.imageWidth, 120 * mm / picture.imageHeight)
        picture.drawWidth, picture.drawHeight = (picture.imageWidth * scale,
                                                 picture.imageHeight * scale)  # fmt: skip
        out += [Spacer(1, 3 * mm),
                Paragraph(f"Screenshot of event #{line['seq']} ({line['time']}), "
                          f"{file_name(sha, ctype)}, SHA-256 of the sealed file {sha}", style),
                picture]  # fmt: skip
    return out
