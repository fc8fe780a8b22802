"""Browser history databases: finding profiles' files, copying them, reading new visits.

Chromium-family browsers (Chromium, Chrome, Edge) keep `History` (tables `urls`, `visits`;
times in microseconds since 1601) and Firefox keeps `places.sqlite` (`moz_places`,
`moz_historyvisits`; microseconds since 1970). Both hold their database locked and write
through a journal or WAL, so the agent copies the file with its `-wal` and `-journal` into a
private temporary folder, reads the copy (SQLite replays the WAL into it) and deletes it at
once. `immutable=1` on the original would miss Firefox's WAL. Visits are read by joining the
visits table: a fresh Firefox profile holds bookmark rows that were never visited.

Pure helpers (time conversion, profiles.ini) are apart from the file work.
"""

from __future__ import annotations

import configparser
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["chromium", "firefox"]

DB_NAME: dict[Kind, str] = {"chromium": "History", "firefox": "places.sqlite"}
SIDE_FILES = ("-wal", "-journal")  # -shm is left behind: SQLite rebuilds it from the WAL
CHROMIUM_EPOCH_OFFSET_US = 11_644_473_600_000_000  # 1601-01-01 to 1970-01-01

_SQL: dict[Kind, str] = {
    "chromium": "SELECT v.id, u.url, v.visit_time FROM visits v JOIN urls u ON u.id = v.url "
                "WHERE v.id > ? ORDER BY v.id LIMIT ?",
    "firefox": "SELECT v.id, p.url, v.visit_date FROM moz_historyvisits v "
               "JOIN moz_places p ON p.id = v.place_id WHERE v.id > ? ORDER BY v.id LIMIT ?",
}  # fmt: skip
_RECENT: dict[Kind, str] = {
    "chromium": "SELECT v.id, u.url, v.visit_time FROM visits v JOIN urls u ON u.id = v.url "
                "WHERE v.id <= ? ORDER BY v.id DESC LIMIT ?",
    "firefox": "SELECT v.id, p.url, v.visit_date FROM moz_historyvisits v "
               "JOIN moz_places p ON p.id = v.place_id WHERE v.id <= ? ORDER BY v.id DESC "
               "LIMIT ?",
}  # fmt: skip
_MAX: dict[Kind, str] = {
    "chromium": "SELECT COALESCE(MAX(id), 0) FROM visits",
    "firefox": "SELECT COALESCE(MAX(id), 0) FROM moz_historyvisits",
}


@dataclass(frozen=True)
class BrowserProfile:
    browser: str  # "chromium", "chrome", "edge", "firefox"
    kind: Kind
    name: str  # the profile folder's name: "Default", "Profile 1", "abcd1234.default-esr"
    folder: Path

    @property
    def db(self) -> Path:
        return self.folder / DB_NAME[self.kind]

    @property
    def key(self) -> str:
        """Stable identity for the cursor file."""
        return f"{self.browser}:{self.db}"


@dataclass(frozen=True)
class Visit:
    visit_id: int
    url: str
    visited_unix_ms: int


def to_unix_ms(kind: Kind, raw: int | None) -> int:
    """A visit time as the browser stores it -> milliseconds since 1970 (0 if unknown)."""
    if not raw or raw < 0:
        return 0
    if kind == "chromium":
        return max(0, (raw - CHROMIUM_EPOCH_OFFSET_US) // 1000)
    return raw // 1000


def parse_profiles_ini(text: str, base: Path) -> list[Path]:
    """Firefox's profiles.ini -> the profile folders it names (relative ones under base)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return []
    found: list[Path] = []
    for section in parser.sections():
        if not section.lower().startswith("profile") or "Path" not in parser[section]:
            continue
        raw = parser[section]["Path"].strip()
        relative = parser[section].get("IsRelative", "1").strip() != "0"
        path = base / raw if relative else Path(raw)
        if path not in found:
            found.append(path)
    return found


def signature(profile: BrowserProfile) -> tuple[int, ...]:
    """(mtime, size) of the database and its WAL/journal: changes when a visit is written."""
    out: list[int] = []
    for suffix in ("", *SIDE_FILES):
        try:
            st = Path(str(profile.db) + suffix).stat()
        except OSError:
            out += [0, 0]
        else:
            out += [st.st_mtime_ns, st.st_size]
    return tuple(out)


@contextmanager
def snapshot(profile: BrowserProfile) -> Iterator[sqlite3.Connection | None]:
    """A connection to a private copy of the profile's history (None if it has none).

    The copy lives in a 0700 temporary folder for the length of the `with` and is deleted.
    """
    with tempfile.TemporaryDirectory(prefix="sg-history-") as tmp:
        copy = Path(tmp) / "history.sqlite"
        try:
            shutil.copyfile(profile.db, copy)
        except OSError:
            yield None
            return
        for suffix in SIDE_FILES:  # absent when nothing is pending: the main file is whole
            with suppress(OSError):
                shutil.copyfile(str(profile.db) + suffix, str(copy) + suffix)
        try:
            conn = sqlite3.connect(copy, timeout=1)
        except sqlite3.Error:
            yield None
            return
        with closing(conn):
            yield conn


def read_visits(conn: sqlite3.Connection, kind: Kind, after_id: int,
                limit: int = 1000) -> list[Visit]:  # fmt: skip
    """Visits with an id above after_id, oldest first."""
    rows = conn.execute(_SQL[kind], (after_id, limit)).fetchall()
    return [Visit(int(i), str(u), to_unix_ms(kind, t)) for i, u, t in rows]


def recent_visits(conn: sqlite3.Connection, kind: Kind, upto_id: int, count: int) -> list[Visit]:
    """The `count` visits up to and including upto_id, oldest first (context after a restart)."""
    rows = conn.execute(_RECENT[kind], (upto_id, count)).fetchall()
    return [Visit(int(i), str(u), to_unix_ms(kind, t)) for i, u, t in reversed(rows)]


def max_visit_id(conn: sqlite3.Connection, kind: Kind) -> int:
    row = conn.execute(_MAX[kind]).fetchone()
    return int(row[0]) if row else 0
