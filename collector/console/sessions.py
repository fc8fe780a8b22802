"""Server-side sessions and the login throttle. Both live in memory: a restart logs everyone
out, which is the safe direction. The cookie carries only a random id.

Nothing is stored for a visitor who has not logged in (issue 16: a flood of cookie-less requests
once made a session each). Their form token is a signed double-submit token (`PreLogin`): a
cookie and the login form's hidden field must carry the same token, signed with a key kept in
the data folder. Only a login makes a server-side session, and the store holds at most
MAX_SESSIONS: past that the least recently used is evicted (logged).

A session also holds the account as it was at login, with a stamp of its password; the console
checks it against the database on every request, so a password changed or an account disabled
from the CLI (through the admin socket) ends the session as surely as one done in the console.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from aiohttp import web

from collector.accounts import Account

log = logging.getLogger(__name__)
Clock = Callable[[], float]
# A school's staff log in from a few devices each; a thousand sessions is far beyond any day's
# use, and only a right password (and second factor) makes one.
MAX_SESSIONS = 1_000
ENDED = (
    "Your session has ended because your password was changed or your account was disabled. "
    "Log in again."
)


@dataclass
class Session:
    id: str
    csrf: str
    created: float
    seen: float
    account: Account | None = None
    flash: list[str] = field(default_factory=list)
    enrolling: str = ""  # a TOTP secret offered at enrolment, until a code confirms it


class PreLogin:
    """Form tokens for visitors not logged in, kept by them, not by us: "issued.nonce.mac"."""

    MAX_AGE_S = 12 * 3600

    def __init__(self, key: bytes, clock: Clock = time.time) -> None:
        self.key, self.clock = key, clock

    def _mac(self, body: str) -> str:
        return hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        body = f"{int(self.clock())}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._mac(body)}"

    def valid(self, token: str | None) -> bool:
        if not token or token.count(".") != 2 or len(token) > 120:
            return False
        body, _, mac = token.rpartition(".")
        issued = body.split(".", 1)[0]
        if not issued.isascii() or not issued.isdigit():
            return False
        fresh = 0 <= self.clock() - int(issued) < self.MAX_AGE_S
        return fresh and hmac.compare_digest(mac, self._mac(body))

    @staticmethod
    def visitor(token: str) -> Session:
        """A session object for one anonymous request: never stored, its CSRF the token."""
        return Session("", token, 0.0, 0.0)


class Sessions:
    def __init__(
        self, idle_s: float, max_s: float, clock: Clock = time.monotonic,
        bound: int = MAX_SESSIONS,
    ) -> None:  # fmt: skip
        self.idle_s, self.max_s, self.clock, self.bound = idle_s, max_s, clock, bound
        self._by_id: dict[str, Session] = {}  # in order of last use: the first is the stalest

    def __len__(self) -> int:
        return len(self._by_id)

    def new(self) -> Session:
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        if len(self._by_id) >= self.bound:
            self._sweep()
        while len(self._by_id) >= self.bound:
            stalest = next(iter(self._by_id.values()))
            del self._by_id[stalest.id]
            who = stalest.account.username if stalest.account else ""
            log.warning("console.session_evicted user=%s bound=%d", who, self.bound)
        self._by_id[s.id] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        s = self._by_id.get(sid or "")
        if s is None:
            return None
        now = self.clock()
        if now - s.seen > self.idle_s or now - s.created > self.max_s:
            del self._by_id[s.id]
            return None
        s.seen = now
        self._by_id[s.id] = self._by_id.pop(s.id)  # to the end: most recently used
        return s

    def login(self, old: Session, account: Account) -> Session:
        """A fresh id and CSRF token on login, so a planted session id is worth nothing."""
        self.drop(old)
        s = self.new()
        s.account = account
        return s

    def drop(self, s: Session) -> None:
        self._by_id.pop(s.id, None)

    def end_user(self, username: str, keep: Session | None = None, why: str = ENDED) -> int:
        """Log one account out everywhere except `keep` (after a password change, a reset or a
        disable). Each ended session stays as an anonymous one, so the next page says `why`
        on the login form. Returns how many were ended."""
        ended = 0
        for s in self._by_id.values():
            if s.account is not None and s.account.username == username and s is not keep:
                s.account = None
                s.flash = [why] if why else []
                ended += 1
        return ended

    def _sweep(self) -> None:
        now = self.clock()
        for sid, s in list(self._by_id.items()):
            if now - s.seen > self.idle_s or now - s.created > self.max_s:
                del self._by_id[sid]


class Throttle:
    """After FREE[kind] failed logins under a key within WINDOW seconds, every further attempt
    under it must wait, doubling from BASE seconds up to CAP. Keys: "user:NAME@ADDR" (this
    account from this address), "addr:ADDR" (any account from this address), "wide:NAME" (this
    account from anywhere: only many addresses together slow it) and "all" (every failure:
    a ceiling on guessing across the school). While a key waits, the login page checks nothing
    but a second factor: only an account holder with a fresh code gets past (views_auth.py).
    A success clears the keys it is given."""

    FREE: ClassVar[dict[str, int]] = {"user": 5, "addr": 10, "wide": 30, "all": 100}
    WINDOW, BASE, CAP = 900.0, 30.0, 900.0

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._fails: dict[str, list[float]] = {}

    def wait(self, *keys: str) -> float:
        """Seconds to wait before another attempt is allowed (0: go ahead)."""
        now = self.clock()
        longest = 0.0
        for key in keys:
            fails = [t for t in self._fails.get(key, []) if now - t < self.WINDOW]
            if fails:
                self._fails[key] = fails
            else:
                self._fails.pop(key, None)  # nothing kept for a key with no recent failure
            free = self._free(key)
            if len(fails) >= free:
                delay = min(self.CAP, self.BASE * 2 ** (len(fails) - free))
                longest = max(longest, fails[-1] + delay - now)
        return max(0.0, longest)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        if len(self._fails) > 100_000:  # addresses a flood made up: forget the stale ones
            self._fails = {k: v for k, v in self._fails.items() if now - v[-1] < self.WINDOW}
        for key in keys:
            fails = self._fails.setdefault(key, [])
            fails.append(now)
            del fails[: -(self._free(key) + 16)]  # enough to reach CAP; no more kept

    def _free(self, key: str) -> int:
        return self.FREE.get(key.split(":", 1)[0], self.FREE["user"])

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._fails.pop(key, None)


# Where the middleware puts the request's session (a typed key: aiohttp 3.14 warns on strings).
SESSION: web.RequestKey[Session] = web.RequestKey("session", Session)


def account_of(request: web.Request) -> Account:
    """The signed-in account of a page the middleware lets only signed-in requests reach."""
    account = request[SESSION].account
    if account is None:
        raise web.HTTPSeeOther("/login")
    return account
