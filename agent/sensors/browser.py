"""Browser history sensor: Chromium, Chrome, Edge and Firefox, every profile of every account.

    watchdog (inotify; ReadDirectoryChangesW on Windows) on each browser root and profile
      ─▶ a changed History / places.sqlite (or its -wal/-journal) marks the profile dirty
      ─▶ copy the database with its WAL/journal, read visits after the profile's cursor
      ─▶ UrlMatcher of the account's profile (URL lists, search queries into the keywords)
      ─▶ UrlDetection / KeywordDetection events (agent/browser_events.py)

A rescan every `rescan_s` finds new accounts, browsers and profiles, and catches any change
the watcher missed (the (mtime, size) signature decides whether to read). The last visit id
of each profile is kept in `<state>/browser_cursors.json` (ids and times only, no URL). A
profile seen at the first scan without a cursor starts at its newest visit (history from
before the agent is not reported); one that appears later is read from its first visit.

Logging: counts at INFO; URLs only at DEBUG (never enable DEBUG on a pupil's PC in normal
running), detection context never.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.browser_events import CONTEXT_URLS, VisitContext, visit_events
from agent.browser_history import (
    BrowserProfile,
    max_visit_id,
    read_visits,
    recent_visits,
    signature,
    snapshot,
)
from agent.browser_paths import BrowserRoot, local_homes, owner, profiles_in, roots_for
from agent.profiles import ProfileCache
from agent.sensors import SensorContext, SensorUnavailable
from protos import events_pb2
from rules.compile import Compiled
from rules.urls import UrlMatcher

log = logging.getLogger(__name__)

WATCHED_NAMES = frozenset({
    "History", "History-journal", "History-wal",
    "places.sqlite", "places.sqlite-wal", "places.sqlite-journal", "profiles.ini",
})  # fmt: skip
CURSOR_FILE = "browser_cursors.json"


def _subfolders(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return []


class _Cursors:
    """Last visit (id, time in ms) per profile; on disk when the agent has a state folder."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, list[int]] = {}
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text())
                self.data = {str(k): [int(v[0]), int(v[1])] for k, v in loaded.items()}
            except (OSError, ValueError, TypeError, IndexError, AttributeError) as exc:
                log.error("browser.cursors_unreadable path=%s error=%s", path, exc)

    def get(self, key: str) -> tuple[int, int] | None:
        found = self.data.get(key)
        return (found[0], found[1]) if found else None

    def set(self, key: str, visit_id: int, visited_ms: int) -> None:
        self.data[key] = [visit_id, visited_ms]
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(self.data, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)
        except OSError as exc:  # e.g. a full disk: keep going from memory
            log.error("browser.cursors_not_saved path=%s error=%s", self.path, exc)


class BrowserSensor:
    name = "browser"

    def __init__(self, homes: Callable[[], list[Path]] = local_homes, rescan_s: float = 30.0,
                 state_dir: Path | None = None) -> None:  # fmt: skip
        self._homes = homes
        self._rescan_s = rescan_s
        self._state_dir = state_dir
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.ready = threading.Event()  # set after the first scan
        self._dirty: set[Path] = set()
        self._dirty_lock = threading.Lock()
        self._profiles: dict[str, BrowserProfile] = {}
        self._startup: set[str] = set()
        self._sigs: dict[str, tuple[int, ...]] = {}
        self._contexts: dict[str, VisitContext] = {}
        self._owners: dict[str, str] = {}
        self._watched: set[Path] = set()
        self._matchers: dict[str, tuple[Compiled, UrlMatcher]] = {}
        self._accounts = ProfileCache()
        self.visits_read = 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _touched(self, path: str, is_dir: bool) -> None:
        """watchdog's thread: note the folder, wake the reader. Nothing else."""
        p = Path(path)
        if not is_dir and p.name not in WATCHED_NAMES:
            return  # cookies, caches, sessions: not history
        with self._dirty_lock:
            self._dirty.add(p if is_dir else p.parent)
        self._wake.set()

    def run(self, ctx: SensorContext) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError as exc:
            raise SensorUnavailable(f"watchdog: {exc}") from exc
        sensor = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                sensor._touched(os.fsdecode(event.src_path), event.is_directory)
                dest = getattr(event, "dest_path", "")
                if dest:
                    sensor._touched(os.fsdecode(dest), event.is_directory)

        state = self._state_dir or ctx.state_dir
        self._cursors = _Cursors(Path(state) / CURSOR_FILE if state else None)
        observer = Observer()
        observer.start()
        handler = Handler()
        try:
            self._scan(observer, handler, startup=True)
            for profile in list(self._profiles.values()):  # cursors; visits made while stopped
                self._check(ctx, profile)
            self.ready.set()
            log.info("browser.started profiles=%d watched=%d", len(self._profiles),
                     len(self._watched))  # fmt: skip
            next_scan = time.monotonic() + self._rescan_s
            while not self._stop.is_set():
                self._wake.wait(max(0.0, next_scan - time.monotonic()))
                self._wake.clear()
                if self._stop.is_set():
                    break
                with self._dirty_lock:
                    dirty, self._dirty = self._dirty, set()
                known = {p.folder for p in self._profiles.values()}
                if time.monotonic() >= next_scan or not dirty <= known:  # a new folder or file
                    self._scan(observer, handler, startup=False)
                    next_scan = time.monotonic() + self._rescan_s
                    dirty = {p.folder for p in self._profiles.values()}
                for profile in list(self._profiles.values()):
                    if profile.folder in dirty:
                        self._check(ctx, profile)
        finally:
            observer.stop()
            observer.join(5)

    def _watch(self, observer: Any, handler: Any, path: Path) -> None:
        if path in self._watched:
            return
        try:
            observer.schedule(handler, str(path), recursive=False)
        except OSError as exc:  # gone already, or out of inotify watches
            log.warning("browser.watch_failed path=%s error=%s", path, exc)
            return
        self._watched.add(path)

    def _scan(self, observer: Any, handler: Any, startup: bool) -> None:
        roots: list[BrowserRoot] = roots_for(self._homes())
        for root in roots:
            self._watch(observer, handler, root.path)
            for folder in _subfolders(root.path):  # where a new profile's database appears
                self._watch(observer, handler, folder)
            for profile in profiles_in(root):
                if profile.key not in self._profiles:
                    self._profiles[profile.key] = profile
                    if startup:
                        self._startup.add(profile.key)
                    log.info("browser.profile_found browser=%s profile=%s", profile.browser,
                             profile.name)  # fmt: skip
                self._watch(observer, handler, profile.folder)

    def _check(self, ctx: SensorContext, profile: BrowserProfile) -> None:
        key = profile.key
        sig = signature(profile)
        if sig == self._sigs.get(key):
            return
        with snapshot(profile) as conn:
            if conn is None:
                return
            try:
                visits, context = self._new_visits(conn, profile)
            except sqlite3.Error as exc:  # a new profile, or a copy caught mid-write: the
                # next change retries ("no such table" while a browser creates its database)
                level = logging.DEBUG if "no such table" in str(exc) else logging.WARNING
                log.log(level, "browser.read_failed browser=%s profile=%s error=%s",
                        profile.browser, profile.name, exc)  # fmt: skip
                return
        self._sigs[key] = sig
        if not visits:
            return
        account = self._owners.get(key) or owner(profile.db)
        self._owners[key] = account
        ctxq = self._contexts.setdefault(key, VisitContext())
        if not ctxq.urls:
            for url in context:
                ctxq.push(url)
        detections = 0
        for visit in visits:
            for event in self._events(ctx, profile, account, visit, ctxq.previous()):
                detections += 1
                ctx.emit(event)
            ctxq.push(visit.url)
        self.visits_read += len(visits)
        self._cursors.set(key, visits[-1].visit_id, visits[-1].visited_unix_ms)
        log.info("browser.visits browser=%s profile=%s read=%d detections=%d", profile.browser,
                 profile.name, len(visits), detections)  # fmt: skip

    def _new_visits(self, conn: sqlite3.Connection, profile: BrowserProfile) -> tuple[list[Any],
                                                                                   list[str]]:
        kind, key = profile.kind, profile.key
        cursor = self._cursors.get(key)
        newest = max_visit_id(conn, kind)
        if cursor is None:
            start = newest if key in self._startup else 0
            self._cursors.set(key, start, 0)
            cursor = (start, 0)
        after, after_ms = cursor
        if newest < after:  # history cleared and ids reused: go by time instead
            visits = [v for v in read_visits(conn, kind, 0) if v.visited_unix_ms > after_ms]
        else:
            visits = read_visits(conn, kind, after)
        context = [v.url for v in recent_visits(conn, kind, after, CONTEXT_URLS)] if after else []
        return visits, context

    def _events(self, ctx: SensorContext, profile: BrowserProfile, account: str, visit: Any,
                previous: list[str]) -> list[events_pb2.Event]:  # fmt: skip
        active = ctx.policy()
        chosen = self._accounts.profile_for(active.policy, account)
        if "browser" not in chosen.sensors:
            return []
        compiled = active.compiled(chosen.name)
        cached = self._matchers.get(chosen.name)
        if cached is None or cached[0] is not compiled:
            cached = (compiled, UrlMatcher(compiled))
            self._matchers[chosen.name] = cached
        result = cached[1].match(visit.url)
        if result.matched:
            log.debug("browser.match browser=%s url=%s", profile.browser, visit.url)
        judge = ctx.semantic(chosen.name) if ctx.semantic is not None and result.query else None
        semantic = judge.judge(result.query) if judge is not None and result.query else []
        return visit_events(visit, result, policy=active.policy, profile=chosen,
                            browser=profile, account=account, previous=previous,
                            semantic=semantic)  # fmt: skip
