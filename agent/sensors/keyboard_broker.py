"""The service's side of keyboard capture on Linux: a Unix socket that per-login helpers
(agent/helper.py) connect to, one KeystrokeDetector per helper.

Who may connect: any local process may open the socket (0666), but the kernel tells us its
uid (SO_PEERCRED) and the account is taken from that uid, never from what the helper says.
The uid must resolve to an account and own a login session (logind's /run/user/<uid>, a
utmp entry, or an X display it is running in). Each helper is told whether to capture: only
when the account's profile lists the keyboard sensor (staff: off by default).

Several users: every graphical login starts its own helper; each connection is its own
session (own matcher, own window, own account), so fast user switching and a shared PC with
two seats keep their typing apart. Limits: 4 connections per uid, 32 in all; a connection
that has not said hello within HELLO_S is closed, so idle connections cannot use them up.

Coverage: the helper runs as the logged-in user, who can kill it. Every CHECK_S the broker
compares the desktop sessions (logind's session files, else utmp) with the helpers
connected: an account whose profile captures keystrokes and that has had a desktop session
with no helper for GRACE_S gets a CAPTURE_MISSING status event (a candidate for the DSL and
the technician) and the heartbeat says so; CAPTURE_RESTORED when a helper connects again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import pwd
import selectors
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import psutil  # type: ignore[import-untyped,unused-ignore]  # stubs in dev extras only

from agent import notice
from agent.detector import SPECIAL, KeystrokeDetector, WindowInfo, alert_event
from agent.helper_protocol import (
    LineReader,
    ProtocolError,
    decode,
    peer_credentials,
    socket_path,
)
from agent.policy import ActivePolicy
from agent.profiles import ProfileCache
from agent.screenshots import Screen
from agent.sensors import HelperProcess, SensorContext, SensorUnavailable
from agent.sensors.helper_peers import RESTART_GRACE_S, HelperPeers
from protos import events_pb2
from rules.compile import Compiled
from rules.match import Alert
from rules.schema import Profile
from rules.semantic import SemanticAlert, SemanticJudge

log = logging.getLogger(__name__)

PER_UID, TOTAL = 4, 32
HELLO_S = 5.0  # a connection must say hello within this
CHECK_S = 5.0  # how often desktop sessions are compared with connected helpers
GRACE_S = 60.0  # a login's helper has this long to connect before it is reported missing


def desktop_accounts(sessions: Path = Path("/run/systemd/sessions")) -> set[str]:
    """Accounts with a graphical session on this PC: logind's x11/wayland sessions of class
    user (read from its session files: no process to start every few seconds), or, without
    logind, utmp entries on an X display (":0")."""
    if sessions.is_dir():
        accounts = set()
        for entry in sessions.iterdir():
            if entry.suffix:  # "<id>.ref" pipes beside the "<id>" files
                continue
            try:
                fields = dict(line.split("=", 1) for line in entry.read_text().splitlines()
                              if "=" in line)  # fmt: skip
            except OSError:  # the session ended while we looked
                continue
            if (fields.get("TYPE") in ("x11", "wayland") and fields.get("CLASS") == "user"
                    and fields.get("STATE") != "closing" and fields.get("USER")):  # fmt: skip
                accounts.add(fields["USER"])
        return accounts
    return {u.name for u in psutil.users() if u.name and (u.terminal or "").startswith(":")}


def login_session_problem(uid: int, pid: int, account: str) -> str | None:
    """Why this peer does not own a desktop session, or None if it does."""
    if Path(f"/run/user/{uid}").is_dir():
        return None
    try:
        if account in {u.name for u in psutil.users()}:
            return None
        env = psutil.Process(pid).environ()
    except psutil.Error:
        return "cannot read the peer process"
    display = env.get("DISPLAY", "")
    number = display.rpartition(":")[2].split(".")[0]
    if number.isdigit() and Path(f"/tmp/.X11-unix/X{number}").exists():  # noqa: S108  # X's path
        return None
    return "the account has no login session"


class KeyboardBroker:
    name = "keyboard"

    def __init__(
        self, path: Path | None = None,
        desktops: Callable[[], set[str]] = desktop_accounts, grace_s: float = GRACE_S,
        hello_s: float = HELLO_S, restart_grace_s: float = RESTART_GRACE_S,
    ) -> None:  # fmt: skip
        self._path = socket_path(path)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sessions: dict[int, tuple[str, str, str]] = {}  # id -> (account, state, detail)
        self._peers = HelperPeers(restart_grace_s)  # the same connections, as processes
        self._profiles = ProfileCache()
        self._desktops = desktops
        self._grace_s = grace_s
        self._hello_s = hello_s
        self._uncovered: dict[str, float] = {}  # account -> since when it has had no helper
        self._reported: set[str] = set()  # accounts reported CAPTURE_MISSING

    def stop(self) -> None:
        self._stop.set()

    def helpers(self) -> list[HelperProcess]:
        """The connected helpers, for the watchdog (restarted as agent/sensors/helper_peers.py
        says: each restarts itself when asked)."""
        return self._peers.processes()

    def status(self) -> tuple[str, str]:
        """The keyboard's health for the heartbeat: per-session states, no typed text."""
        with self._lock:
            sessions = list(self._sessions.values())
            missing = sorted(self._reported)
        if missing:
            return "degraded", f"no keyboard helper in the session of {', '.join(missing)}"[:500]
        if not sessions:
            return "running", "no desktop session helper connected"
        detail = "; ".join(f"{a}:{s}{' (' + d + ')' if d else ''}" for a, s, d in sessions)
        if all(s == "unavailable" for _, s, _ in sessions):
            return "unavailable", detail[:500]
        return "running", detail[:500]

    def run(self, ctx: SensorContext) -> None:
        if not sys.platform.startswith("linux"):
            raise SensorUnavailable("the keyboard broker needs Linux (SO_PEERCRED)")
        server = self._listen()
        ours = self._path.stat().st_ino
        with server, selectors.DefaultSelector() as sel:
            sel.register(server, selectors.EVENT_READ)
            log.info("keyboard.listening socket=%s", self._path)
            next_check = time.monotonic() + CHECK_S
            while not self._stop.is_set():
                if time.monotonic() >= next_check:
                    self.check_coverage(ctx)
                    next_check = time.monotonic() + CHECK_S
                if not sel.select(timeout=0.5):
                    continue
                conn, _ = server.accept()
                threading.Thread(target=self._serve, args=(conn, ctx), daemon=True,
                                 name="keyboard-session").start()  # fmt: skip
        with contextlib.suppress(FileNotFoundError):
            if self._path.stat().st_ino == ours:  # never remove another agent's socket
                self._path.unlink()

    def _listen(self) -> socket.socket:
        if _answers(self._path):
            raise SensorUnavailable(
                f"another agent is already listening on {self._path}; give this one its own "
                "socket with `run --keyboard-socket PATH`"
            )
        try:
            self._path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._path.unlink(missing_ok=True)  # left by an agent that was killed
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(self._path))
            self._path.chmod(0o666)  # any user may connect; creds decide
            server.listen(16)
        except OSError as exc:
            raise SensorUnavailable(f"cannot listen on {self._path}: {exc.strerror}") from None
        return server

    def check_coverage(self, ctx: SensorContext, now: float | None = None) -> None:
        """Report desktop sessions whose keyboard helper is missing (killed by the user, or
        never started), once each, and their return."""
        now = time.monotonic() if now is None else now
        try:
            desktops = self._desktops()
        except Exception:  # a coverage check must never stop capture
            log.exception("keyboard.coverage_check_failed")
            return
        with self._lock:
            helped = {a for a, _, _ in self._sessions.values()}
        for account in sorted(desktops):
            if account in helped or self._compiled(ctx.policy(), account) is None:
                self._uncovered.pop(account, None)
                if account in self._reported:
                    self._reported.discard(account)
                    log.info("keyboard.capture_restored account=%s", account)
                    ctx.emit(self._status(events_pb2.AgentStatus.CAPTURE_RESTORED, account,
                                          f"{account}: keyboard helper connected again", 0))
                continue
            since = self._uncovered.setdefault(account, now)
            if now - since >= self._grace_s and account not in self._reported:
                with self._lock:
                    self._reported.add(account)
                gone = int(now - since)
                log.warning("keyboard.capture_missing account=%s seconds=%d", account, gone)
                ctx.emit(self._status(
                    events_pb2.AgentStatus.CAPTURE_MISSING, account,
                    f"{account} has a desktop session but no keyboard helper for {gone} s "
                    "(stopped by the user, or not started at login)", 3))  # fmt: skip
        for account in set(self._uncovered) - desktops:  # logged out
            self._uncovered.pop(account, None)
        with self._lock:
            self._reported &= desktops

    @staticmethod
    def _status(kind: events_pb2.AgentStatus.Kind.ValueType, account: str, detail: str,
                severity: int) -> events_pb2.Event:  # fmt: skip
        status = events_pb2.AgentStatus(kind=kind, detail=detail)
        return events_pb2.Event(severity=severity, account=account, status=status)

    def _admit(self, conn: socket.socket) -> tuple[str, int] | None:
        pid, uid, _gid = peer_credentials(conn)
        try:
            account = pwd.getpwuid(uid).pw_name
        except KeyError:
            log.warning("keyboard.refused uid=%d reason=no_account", uid)
            return None
        problem = login_session_problem(uid, pid, account)
        with self._lock:
            per_uid = Counter(a for a, _, _ in self._sessions.values())[account]
            if problem is None and (per_uid >= PER_UID or len(self._sessions) >= TOTAL):
                problem = "too many helper connections"
            if problem is None:
                self._sessions[id(conn)] = (account, "connected", "")
        if problem is not None:
            log.warning("keyboard.refused uid=%d pid=%d reason=%s", uid, pid, problem)
            return None
        log.info("keyboard.helper_connected account=%s uid=%d pid=%d", account, uid, pid)
        return account, pid

    def _serve(self, conn: socket.socket, ctx: SensorContext) -> None:
        with conn:
            admitted = self._admit(conn)
            if admitted is None:
                return
            account, pid = admitted
            self._peers.add(conn, pid, account)
            try:
                self._converse(conn, ctx, account, pid)
            except (OSError, ProtocolError) as exc:
                log.info("keyboard.helper_gone account=%s kind=%s", account, type(exc).__name__)
            finally:
                self._peers.remove(conn)
                with self._lock:
                    self._sessions.pop(id(conn), None)

    def _set(self, conn: socket.socket, account: str, state: str, detail: str) -> None:
        with self._lock:
            self._sessions[id(conn)] = (account, state, detail[:200])

    def _keyboard_profile(self, active: ActivePolicy, account: str) -> Profile | None:
        """The account's profile, if it captures keys."""
        profile = self._profiles.profile_for(active.policy, account)
        return profile if "keyboard" in profile.sensors else None

    def _compiled(self, active: ActivePolicy, account: str) -> Compiled | None:
        profile = self._keyboard_profile(active, account)
        return active.compiled(profile.name) if profile else None

    def _prepared(self, active: ActivePolicy, account: str) -> bool:
        profile = self._keyboard_profile(active, account)
        return profile is not None and active.prepare(profile.name)

    def _ready(self, active: ActivePolicy, account: str) -> bool:
        profile = self._keyboard_profile(active, account)
        return profile is not None and active.ready(profile.name)

    def _kept(self, active: ActivePolicy, account: str) -> Compiled | None:
        profile = self._keyboard_profile(active, account)
        return active.kept(profile.name) if profile else None

    def _semantic(self, ctx: SensorContext, account: str) -> SemanticJudge | None:
        profile = self._keyboard_profile(ctx.policy(), account)
        return ctx.semantic(profile.name) if profile and ctx.semantic else None

    def _converse(self, conn: socket.socket, ctx: SensorContext, account: str,
                  pid: int) -> None:  # fmt: skip
        screen = [session_screen(pid, "")]  # the display of this helper's session

        def sink(alert: Alert | SemanticAlert, window: WindowInfo) -> None:
            policy = ctx.policy().policy
            event = alert_event(alert, window, account, policy)
            if ctx.screenshots is None:
                ctx.emit(event)
                return
            profile = self._profiles.profile_for(policy, account).name
            ctx.screenshots.submit(event, profile, window, screen[0])  # never blocks

        matcher = _Matcher(ctx, lambda active: self._compiled(active, account),
                           KeptAside(partial(self._prepared, account=account),
                                     partial(self._ready, account=account),
                                     partial(self._kept, account=account)))  # fmt: skip
        detector = KeystrokeDetector(matcher, sink,
                                     semantic=lambda: self._semantic(ctx, account))
        matcher.before_swap = detector.let_go
        reader = LineReader(conn)
        conn.settimeout(1.0)
        capture: bool | None = None
        offered = False
        greeted, opened = False, time.monotonic()
        try:
            while not self._stop.is_set():
                if not greeted and time.monotonic() - opened > self._hello_s:
                    log.warning("keyboard.refused account=%s reason=no_hello", account)
                    return
                # After the account's matcher is compiled (15 s of CPU at a first login): the
                # helper's sends time out while this loop is busy, so keys typed during that
                # compile would be dropped; they are not captured until it is done instead.
                # (A new policy's compile runs aside: see _Matcher.)
                wanted = matcher() is not None
                if wanted != capture:  # at start, and whenever a new policy flips it
                    capture = wanted
                    why = "" if wanted else "the account's profile has keyboard capture off"
                    self._peers.send(conn, ["capture", wanted, why])
                    if not wanted:
                        self._set(conn, account, "off", "profile")
                if not offered:  # after the first answer; to every account, staff too: the
                    offered = True  # notice is about all the monitoring, not only keys
                    self._peers.send(conn, notice.offer(ctx.policy()))
                try:
                    lines = reader.lines()
                except TimeoutError:
                    detector.tick()  # a pause in typing: judge the sentences so far
                    continue
                if lines is None:
                    return
                for line in lines:
                    msg = decode(line)
                    greeted = greeted or msg[0] == "hello"
                    if msg[0] == "hello" and len(msg) > 1 and isinstance(msg[1], dict):
                        screen[0] = session_screen(pid, str(msg[1].get("display", "")))
                    self._handle(msg, detector, conn, account)
                    if msg[0] == "n":
                        self._notice(ctx, msg, account, pid)
        finally:
            detector.settle()  # a term typed just before logout still counts

    def _handle(self, msg: list[object], detector: KeystrokeDetector, conn: socket.socket,
                account: str) -> None:  # fmt: skip
        kind = msg[0]
        if kind == "k" and len(msg) == 2 and isinstance(msg[1], list):
            for token in msg[1]:
                if isinstance(token, str) and (len(token) == 1 or token in SPECIAL):
                    detector.key(token)
        elif kind == "w" and len(msg) == 5:
            app, title, password, wid = msg[1:]
            detector.focus(WindowInfo(str(app)[:200], str(title)[:300], bool(password),
                                      wid if isinstance(wid, int) else 0))  # fmt: skip
        elif kind == "s" and len(msg) == 3:
            self._set(conn, account, str(msg[1]), str(msg[2]))
            log.info("keyboard.helper_state account=%s state=%s", account, msg[1])
        elif kind not in ("hello", "n"):
            raise ProtocolError(f"unexpected message {kind!r}")


    @staticmethod
    def _notice(ctx: SensorContext, msg: list[object], account: str, pid: int) -> None:
        now_ms = int(ctx.policy().now().timestamp() * 1000)
        showing = notice.received(msg, account, pid, now_ms)
        if showing is not None and ctx.notices is not None:
            ctx.notices.record(showing)


RETRY_S = 60.0  # after a compile aside failed
AGAIN_S = 1.0  # after a matcher made aside was not there to read at the swap


Lookup = Callable[[ActivePolicy], Compiled | None]
_LOAD = object()


@dataclass(frozen=True)
class KeptAside:
    """How a session's matcher is made aside and read back (see ``_Matcher``)."""

    prepare: Callable[[ActivePolicy], bool]  # made and kept on disk (in a child)
    ready: Callable[[ActivePolicy], bool]  # there to read now
    read: Lookup  # read back  # (a lookup aside that kept the matcher on disk: read it at the swap)


class _Matcher:
    """One session's matcher, asked for every key: looked up again only when the policy is
    replaced or the matcher's exemptions change (`Compiled.valid_until`), the only times the
    lookup can give another answer.

    The first lookup is waited for (the helper is told to capture once it is done). A later
    one, which for a new policy compiles for 15-30 s of CPU, runs in a thread of its own
    while the matcher before it goes on judging: the helper's sends time out after 0.5 s,
    so a reader busy compiling would drop what is typed meanwhile. Those keys are judged by
    the policy before the new one (and by an exemption that has just ended).

    Where the new matcher can be kept on disk (``prepare``: compiled in a child, which keeps
    it), the thread aside only makes it; the swap has the detector let the old matcher go
    (``before_swap``) and then reads the new one back (``KeptAside.read``: 0.1-0.2 s, keys
    wait in the socket meanwhile), so the allocator reuses the old one's space. Holding both
    at once left the service 6-7 MB larger after each update. Should the new one not be
    there to read (removed, another thread compiling, an exemption edge passed meanwhile),
    the old one goes on and it is made aside again; only if it is lost between that check
    and the read does the reader make it itself (logged as keyboard.matcher_made_at_swap)."""

    def __init__(self, ctx: SensorContext, lookup: Lookup,
                 aside: KeptAside | None = None) -> None:  # fmt: skip
        self._ctx = ctx
        self._lookup = lookup
        self._kept = aside
        self.before_swap: Callable[[], None] = lambda: None
        self._active: ActivePolicy | None = None
        self._found: Compiled | None = None
        self._until = 0.0  # the policy's clock (Unix s) after which the lookup is made again
        self._next: tuple[ActivePolicy, object] | None = None  # a lookup done aside
        self._aside: threading.Thread | None = None
        self._retry = 0.0  # (monotonic) after a lookup aside failed, not before this

    def __call__(self) -> Compiled | None:
        active = self._ctx.policy()
        if active is self._active and active.now().timestamp() < self._until:
            return self._found
        if self._found is None:  # nothing to judge with meanwhile: wait for it
            self._take(active, self._lookup(active))
        elif (done := self._next) is not None:
            self._next = None
            self._swap(active, *done)
        elif (self._aside is None or not self._aside.is_alive()) and (
                time.monotonic() >= self._retry):  # fmt: skip
            self._aside = threading.Thread(target=self._look_aside, args=(active,),
                                           name="keyboard-compile", daemon=True)  # fmt: skip
            self._aside.start()
        return self._found

    def _look_aside(self, active: ActivePolicy) -> None:
        try:
            made = self._kept is not None and self._kept.prepare(active)
            found = _LOAD if made else self._lookup(active)
        except Exception:  # (a policy that loaded compiles; should it not, keep the old one
            log.exception("keyboard.compile_failed version=%d", active.version)  # and retry)
            self._retry = time.monotonic() + RETRY_S
            return
        self._next = (active, found)

    def _swap(self, now: ActivePolicy, made_for: ActivePolicy, found: object) -> None:
        if made_for is not now:
            return  # replaced again meanwhile: looked up aside for the newest, next key
        if found is _LOAD:
            assert self._kept is not None
            if not self._kept.ready(now):  # gone, or another thread compiling: the old one
                self._retry = time.monotonic() + AGAIN_S  # goes on; made again aside
                return
            self.before_swap()  # the detector's text settled, the old matcher let go
            self._active = self._found = None  # (the old policy holds its matchers too)
            try:
                found = self._kept.read(now)
            except Exception:
                log.exception("keyboard.matcher_not_read version=%d", now.version)
                found = None
            if found is None:  # (lost since it was found ready: made here, keys wait)
                log.warning("keyboard.matcher_made_at_swap version=%d", now.version)
                found = self._lookup(now)
        self._take(now, cast("Compiled | None", found))

    def _take(self, active: ActivePolicy, found: Compiled | None) -> None:
        edge = found.valid_until if found is not None else None
        self._active, self._found = active, found
        self._until = edge.timestamp() if edge is not None else math.inf


def session_screen(pid: int, said: str) -> Screen:
    """Where a helper's windows are, for screenshots: DISPLAY and XAUTHORITY from its process
    environment (the kernel's record; root reads it), else the display its hello named. The
    cookie file matters on a real login (Xorg asks for it); Xvfb in the tests asks for none.
    A cookie file the helper's own user does not own is not used: root must not be steered
    into reading another account's cookies."""
    try:
        proc = psutil.Process(pid)
        env, uid = proc.environ(), proc.uids().real
    except psutil.Error:
        env, uid = {}, -1
    cookie = env.get("XAUTHORITY", "")
    try:
        if cookie and Path(cookie).stat().st_uid != uid:
            log.warning("screenshots.cookie_refused pid=%d reason=not_owned_by_the_helper", pid)
            cookie = ""
    except OSError:
        cookie = ""
    return Screen(env.get("DISPLAY") or said, cookie)


def _answers(path: Path) -> bool:
    """Is a live process listening on this socket path (not just a stale file)?"""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True
