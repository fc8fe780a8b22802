"""Matchers made ahead: a policy's keyboard matchers are compiled before anyone needs them.

A login whose profile has no matcher yet waits for a compile (15-30 s of CPU, more on an old
PC) before its helper is told to capture, so what the pupil types meanwhile is not judged.
That used to happen at the first login after every new policy. Now, when a policy is
applied (and once at the service's start), the matchers of the profiles that capture keys
are made in a child at a lower CPU priority, which keeps them in ``policy-cache/``
(``ActivePolicy.prepare``), so the next login reads its matcher back in 0.1-0.2 s. Nothing
comes back into the service's heap, and the work runs on a short-lived thread: no stack is
kept for it between updates.

The policy's default profile goes first (the one an unsorted account gets), then the other
keyboard profiles in the policy's order, at most ``LIMIT`` of them, so the cache's newest
files are still the ones in play. The work starts ``AFTER_S`` after the policy applied: a
starting service sets up its connection and sensors first, and a policy published twice in
``AFTER_S`` (a DSL mending a typo) is made once. A newer policy arriving meanwhile takes over
after the compile in hand.
"""

from __future__ import annotations

import logging
import threading
import time

from agent.policy import ActivePolicy
from agent.policy_cache import KEEP
from rules.schema import Policy

log = logging.getLogger(__name__)

LIMIT = KEEP - 1  # leave the cache room for a profile's matcher under a new exemption
AFTER_S = 20.0


def keyboard_profiles(policy: Policy, limit: int = LIMIT) -> list[str]:
    """The profiles whose matchers are made ahead, the default profile first."""
    names = [p.name for p in policy.profiles if "keyboard" in p.sensors]
    first = [n for n in names if n == policy.default_profile]
    return (first + [n for n in names if n not in first])[:limit]


class MatchersAhead:
    """Give it each policy as it applies (``want``); it makes that policy's matchers."""

    def __init__(self, after_s: float = AFTER_S) -> None:
        self._after_s = after_s
        self._lock = threading.Lock()
        self._wake = threading.Event()  # a newer policy, or stop
        self._wanted: tuple[ActivePolicy, float] | None = None  # and when to start on it
        self._worker: threading.Thread | None = None
        self._stopped = False
        self._newest = -1  # the newest version given: an older one is not made after it

    def want(self, active: ActivePolicy) -> None:
        """Make ``active``'s keyboard matchers, on a thread of its own (never blocks)."""
        with self._lock:
            if active.version < self._newest:
                return  # (a start racing an update: the newer policy stays wanted)
            self._newest = active.version
            self._wanted = (active, time.monotonic() + self._after_s)
            self._wake.set()
            if self._stopped or (self._worker is not None and self._worker.is_alive()):
                return  # the running worker takes the newest up
            self._worker = threading.Thread(target=self._run, name="matchers-ahead",
                                            daemon=True)  # fmt: skip
            self._worker.start()

    def stop(self) -> None:
        """Start nothing more (a compile in hand finishes in its child)."""
        with self._lock:
            self._stopped = True
            self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the work in hand (tests); True when none is left."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return worker is None or not worker.is_alive()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped or self._wanted is None:
                    self._worker = None  # (a later ``want`` starts another)
                    return
                active, due = self._wanted
                self._wake.clear()
                wait = due - time.monotonic()
                if wait <= 0:
                    self._wanted = None
            if wait > 0:
                self._wake.wait(wait)
            else:
                self._make(active)

    def _make(self, active: ActivePolicy) -> None:
        for profile in keyboard_profiles(active.policy):
            with self._lock:
                if self._stopped or self._wanted is not None:
                    return  # stopping, or a newer policy to make instead
            started = time.monotonic()
            try:
                made = active.prepare(profile, low=True)
            except Exception:  # a bad compile must not end the service; a login retries it
                log.exception("policy.made_ahead_failed version=%d profile=%s",
                              active.version, profile)  # fmt: skip
                continue
            log.info("policy.made_ahead version=%d profile=%s kept=%s seconds=%.1f",
                     active.version, profile, "yes" if made else "no",
                     time.monotonic() - started)  # fmt: skip
