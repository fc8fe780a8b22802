"""Where browsers keep their profiles, for every local account.

Linux: `~/.config/{chromium,google-chrome,microsoft-edge}` (and their beta/dev channels and
the snap), `~/.mozilla/firefox` (and the snap and flatpak). Windows paths are in
`agent/browser_paths_windows.py`, imported only on Windows. The account a history belongs to
is the owner of its file (the OS user whose browser wrote it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from agent.browser_history import DB_NAME, BrowserProfile, Kind, parse_profiles_ini


@dataclass(frozen=True)
class BrowserRoot:
    """A folder holding a browser's profiles (Chromium's user data dir, Firefox's profiles)."""

    browser: str
    kind: Kind
    path: Path


LINUX_ROOTS: tuple[tuple[str, Kind, str], ...] = (
    ("chromium", "chromium", ".config/chromium"),
    ("chromium", "chromium", "snap/chromium/common/chromium"),
    ("chrome", "chromium", ".config/google-chrome"),
    ("chrome", "chromium", ".config/google-chrome-beta"),
    ("chrome", "chromium", ".config/google-chrome-unstable"),
    ("edge", "chromium", ".config/microsoft-edge"),
    ("edge", "chromium", ".config/microsoft-edge-beta"),
    ("edge", "chromium", ".config/microsoft-edge-dev"),
    ("firefox", "firefox", ".mozilla/firefox"),
    ("firefox", "firefox", "snap/firefox/common/.mozilla/firefox"),
    ("firefox", "firefox", ".var/app/org.mozilla.firefox/.mozilla/firefox"),
)


def local_homes() -> list[Path]:
    """Home folders of local accounts that can log in (uid 0 or >= 1000, folder exists)."""
    if sys.platform == "win32":
        from agent.browser_paths_windows import user_profiles

        return user_profiles()
    import pwd

    homes: list[Path] = []
    for entry in pwd.getpwall():
        if entry.pw_uid != 0 and entry.pw_uid < 1000:
            continue
        home = Path(entry.pw_dir)
        if entry.pw_dir not in ("", "/") and home.is_dir() and home not in homes:
            homes.append(home)
    return homes


def roots_for(homes: Iterable[Path]) -> list[BrowserRoot]:
    """Every browser root that exists under the given homes."""
    if sys.platform == "win32":
        from agent.browser_paths_windows import windows_roots

        return [r for r in windows_roots(homes) if r.path.is_dir()]
    found = []
    for home in homes:
        for browser, kind, rel in LINUX_ROOTS:
            path = home / rel
            if path.is_dir():
                found.append(BrowserRoot(browser, kind, path))
    return found


def profiles_in(root: BrowserRoot) -> list[BrowserProfile]:
    """The profiles of one root that have a history database now."""
    folders: list[Path] = []
    if root.kind == "firefox":
        ini = root.path / "profiles.ini"
        with suppress(OSError):
            folders += parse_profiles_ini(ini.read_text("utf-8", "replace"), root.path)
    try:
        folders += [p for p in sorted(root.path.iterdir()) if p.is_dir() and p not in folders]
    except OSError:
        return []
    return [BrowserProfile(root.browser, root.kind, f.name, f) for f in folders
            if (f / DB_NAME[root.kind]).is_file()]  # fmt: skip


def owner(path: Path) -> str:
    """The account owning a file ("" if unknown)."""
    if sys.platform == "win32":
        from agent.browser_paths_windows import owner_of

        return owner_of(path)
    import pwd

    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError):
        return ""
