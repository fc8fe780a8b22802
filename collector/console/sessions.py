"""Server-side sessions and the login throttle. Both live in memory: a restart logs everyone
out, which is the safe direction. The cookie carries only a random id.

A session also holds the account as it was at login, with a stamp of its password; the console
checks it against the database on every request, so a password changed or an account disabled
from the CLI (through the admin socket) ends the session as surely as one done in the console.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from collector.accounts import Account

Clock = Callable[[], float]
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


class Sessions:
    def __init__(self, idle_s: float, max_s: float, clock: Clock = time.monotonic) -> None:
        self.idle_s, self.max_s, self.clock = idle_s, max_s, clock
        self._by_id: dict[str, Session] = {}

    def new(self) -> Session:
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._by_id[s.id] = s
        if len(self._by_id) > 10_000:
            self._sweep()
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
    """After FREE failed logins under a key within WINDOW seconds, every further attempt must
    wait, doubling from BASE seconds up to CAP; while it waits even the right password is
    refused. Keys starting "wide:" (a username from anywhere) allow FREE_WIDE: a guesser at one
    address is slowed after FREE and so cannot lock the DSL out from everywhere else; only
    many addresses together can. A success clears the keys it is given."""

    FREE, FREE_WIDE, WINDOW, BASE, CAP = 5, 30, 900.0, 30.0, 900.0

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._fails: dict[str, list[float]] = {}

    def wait(self, *keys: str) -> float:
        """Seconds to wait before another attempt is allowed (0: go ahead)."""
        now = self.clock()
        longest = 0.0
        for key in keys:
            fails = [t for t in self._fails.get(key, []) if now - t < self.WINDOW]
            self._fails[key] = fails
            free = self.FREE_WIDE if key.startswith("wide:") else self.FREE
            if len(fails) >= free:
                delay = min(self.CAP, self.BASE * 2 ** (len(fails) - free))
                longest = max(longest, fails[-1] + delay - now)
        return max(0.0, longest)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            self._fails.setdefault(key, []).append(now)

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
