"""The DPIA pack: a DPIA draft and three privacy notices, written from the live settings.

    settings (dpia_settings) ──▶ summary ──▶ texts (dpia_text, dpia_notices) ──▶ Markdown files
                                    │                                              (dpia_doc)
                                    └─ compared with the last pack's summary (dpia_changes)

`safeguard-collector dpia` and the console's DPIA page both use `build`. Writing a pack keeps
its settings summary in DATA/dpia/last-settings.json, so the next pack says what changed since.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.paths import DataDir, make_private_dir, write_secret
from collector.privacy import dpia_changes, dpia_notices, dpia_readability, dpia_settings, dpia_text
from collector.privacy.dpia_doc import Doc, plain_text, to_markdown
from collector.reporting.notify import NotifyConfig
from collector.storage.retention import Periods

log = logging.getLogger(__name__)
LAST = "last-settings.json"


@dataclass(frozen=True)
class Pack:
    settings: dict[str, Any]
    fingerprint: str
    changed: list[str] | None  # None: no earlier pack to compare with
    readability: dpia_readability.Readability  # of the pupils' notice
    docs: tuple[Doc, ...]  # the DPIA draft, then the pupils', parents' and staff notices


def default_folder(data: DataDir) -> Path:
    return data.root / "dpia"


def gather(data: DataDir, periods: Periods, notify: NotifyConfig,
           roster: bool = False, roster_profiles: bool = False) -> dict[str, Any]:  # fmt: skip
    """The live settings' summary (`roster`: a pupil roster is imported; `roster_profiles`:
    profiles follow its year groups, so PCs receive login names). Raises DpiaError if no good
    policy is published."""
    version, pol = dpia_settings.live_policy(data)
    school = dpia_settings.school_name(data)
    summary = dpia_settings.summary(version, pol, periods, notify, data.root, school)
    summary["roster"] = dpia_settings.ROSTER_FIELDS if roster else None
    if roster and roster_profiles:  # absent when off, so packs made before read the same
        summary["roster_profiles"] = "on"
    return summary


def previous(data: DataDir) -> dict[str, Any] | None:
    """The settings summary of the last pack written, or None if there is none (or it does not
    read: the pack then reads as a first one, and the log says why)."""
    path = default_folder(data) / LAST
    try:
        got = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("dpia.last_unreadable path=%s error=%s", path, type(exc).__name__)
        return None
    return got.get("settings") if isinstance(got, dict) else None


def build(settings: dict[str, Any], last: dict[str, Any] | None, made: str) -> Pack:
    fp = dpia_settings.fingerprint(settings)
    changed = None if last is None else dpia_changes.changes(last, settings)
    notices = (dpia_notices.pupils(settings), dpia_notices.parents(settings),
               dpia_notices.staff(settings))  # fmt: skip
    readability = dpia_readability.ks2(plain_text(notices[0]))
    draft = dpia_text.dpia(settings, fp, made, changed, readability.line())
    return Pack(settings, fp, changed, readability, (draft, *notices))


def now_text() -> str:
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def write(data: DataDir, pack: Pack, out: Path) -> list[Path]:
    """The pack's Markdown files into `out`; then its summary becomes the one the next pack is
    compared with."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for doc in pack.docs:
        path = out / f"{doc.name}.md"
        path.write_text(to_markdown(doc), encoding="utf-8")
        written.append(path)
    record = {"fingerprint": pack.fingerprint, "settings": pack.settings}
    raw = json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8")
    (out / "settings.json").write_bytes(raw)
    make_private_dir(default_folder(data))
    write_secret(default_folder(data) / LAST, raw)
    log.info("dpia.written fingerprint=%s folder=%s changes=%s", pack.fingerprint[:16], out,
             "first" if pack.changed is None else len(pack.changed))  # fmt: skip
    return written
