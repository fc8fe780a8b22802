"""Browser history: pure parts (times, profiles.ini, events) and reading a copied database."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from agent.browser_events import FULL_LOG, visit_events
from agent.browser_history import (
    BrowserProfile,
    Visit,
    max_visit_id,
    parse_profiles_ini,
    read_visits,
    recent_visits,
    snapshot,
    to_unix_ms,
)
from agent.browser_paths import BrowserRoot, profiles_in
from agent.policy import ActivePolicy
from rules.load import load_policy
from rules.urls import UrlMatcher

pytestmark = pytest.mark.unit

ACTIVE = ActivePolicy(0, load_policy())
KS2 = ACTIVE.policy.profile("ks2")


def test_agent_browser_times() -> None:
    assert to_unix_ms("chromium", 13440046412920635) == 1795572812920
    assert to_unix_ms("firefox", 1795572445459798) == 1795572445459
    assert to_unix_ms("chromium", 0) == 0 and to_unix_ms("firefox", None) == 0
    assert to_unix_ms("chromium", 5) == 0  # before 1970: clamped


def test_agent_browser_profiles_ini(tmp_path: Path) -> None:
    text = ("[General]\nStartWithLastProfile=1\n\n[Profile0]\nName=default-esr\nIsRelative=1\n"
            "Path=abcd.default-esr\n\n[Profile1]\nName=x\nIsRelative=0\nPath=/srv/ff/x\n"
            "[Install4F96D1932A9F858E]\nDefault=abcd.default-esr\n")  # fmt: skip
    assert parse_profiles_ini(text, tmp_path) == [tmp_path / "abcd.default-esr",
                                                  Path("/srv/ff/x")]  # fmt: skip
    assert parse_profiles_ini("not [ an ini", tmp_path) == []


def _chromium_db(path: Path, rows: list[tuple[int, str, int]]) -> None:
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE urls(id INTEGER PRIMARY KEY, url TEXT);"
                       "CREATE TABLE visits(id INTEGER PRIMARY KEY, url INTEGER, visit_time INT);"
                       "PRAGMA journal_mode=WAL;")  # fmt: skip
    for vid, url, t in rows:
        conn.execute("INSERT OR IGNORE INTO urls(url) VALUES (?)", (url,))
        uid = conn.execute("SELECT id FROM urls WHERE url = ?", (url,)).fetchone()[0]
        conn.execute("INSERT INTO visits VALUES (?, ?, ?)", (vid, uid, t))
    conn.commit()  # left open: the rows stay in the -wal, as a running browser leaves them
    _open.append(conn)


_open: list[sqlite3.Connection] = []


def test_agent_browser_reads_a_copy_with_its_wal(tmp_path: Path) -> None:
    folder = tmp_path / "chromium" / "Default"
    folder.mkdir(parents=True)
    t0 = 13440046412920635
    _chromium_db(folder / "History", [(1, "https://a.example/", t0), (2, "https://b.example/",
                                                                     t0 + 1000)])  # fmt: skip
    try:
        assert (folder / "History-wal").stat().st_size > 0
        (profile,) = profiles_in(BrowserRoot("chromium", "chromium", tmp_path / "chromium"))
        assert profile.name == "Default" and profile.db == folder / "History"
        with snapshot(profile) as conn:
            assert conn is not None
            assert max_visit_id(conn, "chromium") == 2
            assert [v.url for v in read_visits(conn, "chromium", 1)] == ["https://b.example/"]
            assert [v.visit_id for v in recent_visits(conn, "chromium", 2, 5)] == [1, 2]
    finally:
        for conn in _open:
            conn.close()
    missing = BrowserProfile("firefox", "firefox", "gone", tmp_path / "nowhere")
    with snapshot(missing) as conn:
        assert conn is None


def _events(url: str, profile_name: str = "ks2", full_log: bool = False) -> list[object]:
    profile = replace(ACTIVE.policy.profile(profile_name), full_browsing_log=full_log)
    result = UrlMatcher(ACTIVE.compiled(profile_name)).match(url)
    browser = BrowserProfile("firefox", "firefox", "p.default", Path("/home/x/p.default"))
    return list(visit_events(Visit(7, url, 1234), result, policy=ACTIVE.policy, profile=profile,
                             browser=browser, account="pupil1",
                             previous=["https://before.example/"]))  # fmt: skip


def test_agent_browser_visit_events() -> None:
    (bet,) = _events("https://www.bet365.com/sports")
    assert bet.url.category == "gambling" and bet.url.rule == "bet365.com"  # type: ignore[attr-defined]
    assert list(bet.url.previous_urls) == ["https://before.example/"]  # type: ignore[attr-defined]
    assert bet.account == "pupil1" and bet.url.visited_unix_ms == 1234  # type: ignore[attr-defined]
    (search,) = _events("https://www.google.co.uk/search?q=how+to+kill+myself")
    assert search.keyword.source == "search:google"  # type: ignore[attr-defined]
    assert search.keyword.category == "suicide" and search.severity == 5  # type: ignore[attr-defined]
    assert _events("https://www.bbc.co.uk/bitesize") == []
    assert _events("https://www.google.com/search?q=volcano+facts") == []
    # staff: URL lists limited to illegal/inappropriate categories
    assert _events("https://www.bet365.com/", profile_name="staff") == []


def test_agent_browser_full_browsing_log_only_when_the_profile_asks() -> None:
    (logged,) = _events("https://www.bbc.co.uk/bitesize", full_log=True)
    assert logged.url.list == FULL_LOG and logged.severity == 0  # type: ignore[attr-defined]
    assert list(logged.url.previous_urls) == []  # type: ignore[attr-defined]
    assert len(_events("https://www.bet365.com/", full_log=True)) == 1  # no double record
