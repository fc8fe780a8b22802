"""Browser profile locations on Windows (NOT yet run on Windows; imported only there).

Per account (every folder under `C:\\Users` with an `AppData`):
  %LOCALAPPDATA%\\Chromium\\User Data, Google\\Chrome\\User Data, Microsoft\\Edge\\User Data
  %APPDATA%\\Mozilla\\Firefox (profiles.ini, Profiles\\*)
The account is the name of the user folder holding the file (the service runs as SYSTEM, so
the file owner is not a reliable answer for roaming or redirected profiles).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from agent.browser_history import Kind
from agent.browser_paths import BrowserRoot

LOCAL: tuple[tuple[str, Kind, str], ...] = (
    ("chromium", "chromium", "Chromium/User Data"),
    ("chrome", "chromium", "Google/Chrome/User Data"),
    ("chrome", "chromium", "Google/Chrome Beta/User Data"),
    ("edge", "chromium", "Microsoft/Edge/User Data"),
    ("edge", "chromium", "Microsoft/Edge Beta/User Data"),
)
ROAMING: tuple[tuple[str, Kind, str], ...] = (
    ("firefox", "firefox", "Mozilla/Firefox"),
    ("firefox", "firefox", "Mozilla/Firefox/Profiles"),
)
SKIP = {"All Users", "Default", "Default User", "Public", "WDAGUtilityAccount"}


def user_profiles() -> list[Path]:
    users = Path(os.environ.get("SYSTEMDRIVE", "C:") + "\\Users")
    try:
        return [p for p in sorted(users.iterdir())
                if p.name not in SKIP and (p / "AppData").is_dir()]  # fmt: skip
    except OSError:
        return []


def windows_roots(homes: Iterable[Path]) -> list[BrowserRoot]:
    roots = []
    for home in homes:
        for browser, kind, rel in LOCAL:
            roots.append(BrowserRoot(browser, kind, home / "AppData" / "Local" / rel))
        for browser, kind, rel in ROAMING:
            roots.append(BrowserRoot(browser, kind, home / "AppData" / "Roaming" / rel))
    return roots


def owner_of(path: Path) -> str:
    """The user folder a history file lives under: C:\\Users\\<account>\\AppData\\..."""
    parts = path.parts
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "users" and i + 1 < len(parts):
            return parts[i + 1]
    return ""
