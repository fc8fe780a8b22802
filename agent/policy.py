"""The policy an agent applies, and how a new one arrives.

The collector signs policy bundles (rules/bundle.py); the agent applies one only when its
signature verifies with the policy key it was given at enrolment and its version is newer than
what it has, and keeps the last good bundle on disk (state/policy.json), re-verified at every
start, so neither editing files nor blocking the network turns monitoring off. Until the first
bundle arrives the policy shipped with the agent applies.

The service loads, verifies and compiles in a child process (agent/policy_child.py) and
keeps only the finished objects; tests and tools that build an ``ActivePolicy`` themselves
compile in their own process.

Exemption windows are judged by `clock` (the service gives agent/clock.py's: the PC's clock
corrected by the skew the collector measured), so a PC whose clock is hours off neither ends
an exemption early nor keeps one alive after it ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent import policy_child
from agent.memory import give_back_memory
from agent.policy_cache import PolicyCache
from rules import bundle as bundles
from rules.bundle import files_digest
from rules.compile import Compiled
from rules.load import DEFAULT_DIR, read_folder
from rules.schema import Policy, PolicyError

log = logging.getLogger(__name__)


@dataclass
class ActivePolicy:
    """One policy version, with its per-profile matchers compiled on first use."""

    version: int  # 0: the policy shipped with the agent, before any bundle arrived
    policy: Policy
    _compiled: dict[str, Compiled] = field(default_factory=dict, repr=False)
    _shared: dict[tuple[object, ...], Compiled] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _kept: bool = field(default=False, repr=False)  # the last compile was read from the cache
    _making: dict[Path, threading.Event] = field(default_factory=dict, repr=False)  # (prepare)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)
    in_child: bool = False  # compile in a child process (the service: agent/policy_child.py)
    source: str = ""  # the digest of the files its matchers are made from (``matcher_digest``)
    cache: PolicyCache | None = field(default=None, repr=False)  # with ``source`` and a child

    def now(self) -> datetime:
        """The time exemption windows are judged by."""
        return self.clock()

    def compiled(self, profile: str, now: datetime | None = None) -> Compiled:
        """The matcher for a profile; recompiled when an exemption starts or ends."""
        now = now or self.clock()
        with self._lock:
            found = self._compiled.get(profile)
            if found is None or not self._valid(found, now):
                self._kept = False
                started = time.monotonic()
                found = Compiled(self.policy, profile, now, self._shared,
                                 self._tables if self.in_child else None)  # fmt: skip
                self._compiled[profile] = found
                give_back_memory()  # compiling peaks at several times what it keeps
                log.info("policy.compiled version=%d profile=%s seconds=%.1f kept=%s",
                         self.version, profile, time.monotonic() - started,
                         "yes" if self._kept else "no")  # fmt: skip
            return found

    def prepare(self, profile: str, now: datetime | None = None, low: bool = False) -> bool:
        """Make the profile's matcher ready without bringing it into this process: True
        when ``kept`` can read it back (compiled already, kept on disk already, or compiled
        now in a child, which keeps it), False when there is nowhere to keep it. ``low``:
        the child runs at a lower CPU priority (nobody is waiting for it)."""
        now = now or self.clock()
        with self._lock:  # held only to look: a login must not wait for this compile
            if self._valid(self._compiled.get(profile), now):
                return True
            if self.cache is None or not self.source or not self.in_child:
                return False
            path = self.cache.matcher(self.source,
                                      Compiled.share_key(self.policy, profile, now))  # fmt: skip
            if self.cache.in_use(path):
                return True
            making = self._making.get(path)
            mine = making is None
            if making is None:
                making = self._making[path] = threading.Event()
        if not mine:  # another thread makes the same file: wait for it, not a second child
            making.wait()
            return path.exists()
        try:
            return policy_child.kept_only(("compile", self.policy, profile, now), path, low)
        finally:
            with self._lock:
                del self._making[path]
            making.set()

    def ready(self, profile: str, now: datetime | None = None) -> bool:
        """Would ``kept`` find the profile's matcher now (no other thread compiling)?"""
        now = now or self.clock()
        if not self._lock.acquire(blocking=False):
            return False
        try:
            found = self._compiled.get(profile)
            if found is not None and self._valid(found, now):
                return True
            key = Compiled.share_key(self.policy, profile, now)
            return key in self._shared or (self.cache is not None and bool(self.source)
                                           and self.cache.matcher(self.source, key).exists())
        finally:
            self._lock.release()

    def kept(self, profile: str, now: datetime | None = None) -> Compiled | None:
        """The profile's matcher if it is compiled already or kept on disk (read back in
        0.1-0.2 s); None rather than compile it, or wait while another thread compiles."""
        now = now or self.clock()
        if not self._lock.acquire(blocking=False):
            return None
        try:
            found = self._compiled.get(profile)
            if found is not None and self._valid(found, now):
                return found
            if self.cache is None or not self.source:
                return None
            started, key = time.monotonic(), Compiled.share_key(self.policy, profile, now)
            tables: dict[str, Any] = {}
            if key not in self._shared:  # (else the tables are this policy's already)
                tables = self.cache.load(self.cache.matcher(self.source, key))
                if not isinstance(tables, dict):
                    return None
            found = Compiled(self.policy, profile, now, self._shared, lambda *_: tables)
            self._compiled[profile] = found
            log.info("policy.compiled version=%d profile=%s seconds=%.1f kept=yes",
                     self.version, profile, time.monotonic() - started)  # fmt: skip
            return found
        finally:
            self._lock.release()

    @staticmethod
    def _valid(found: Compiled | None, now: datetime) -> bool:
        return found is not None and (found.valid_until is None or now < found.valid_until)

    def _tables(self, policy: Policy, profile: str, now: datetime) -> dict[str, Any]:
        """From the cache if this policy's tables were kept there, else built in a child
        (which keeps them)."""
        if self.cache is None or not self.source:
            return policy_child.compiled_tables(policy, profile, now)
        path = self.cache.matcher(self.source, Compiled.share_key(policy, profile, now))
        tables = self.cache.load(path)
        if isinstance(tables, dict):
            self._kept = True
            return tables
        return policy_child.compiled_tables(policy, profile, now, path)


class PolicyHolder:
    """The current policy for every sensor; replaced only by a verified, newer bundle."""

    def __init__(self, last_good: Path, public_key: Ed25519PublicKey,
                 clock: Callable[[], datetime] | None = None,
                 cache: PolicyCache | None = None) -> None:  # fmt: skip
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cache = cache
        self._path = last_good
        self._key = public_key
        self._raw_key = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[ActivePolicy], None]] = []
        self._active = self._load()

    def _load(self) -> ActivePolicy:
        try:
            data = self._last_good_bytes()
            # The bytes that name the kept policy are the bytes the child verifies: a file
            # replaced between two reads cannot be kept under another's name.
            saved = None if data is None else self._loaded(
                ("last_good", data, self._raw_key), self._kept_bundle(data))  # fmt: skip
        except PolicyError as exc:
            # A damaged or forged file: keep it for the technician, fall back to what shipped.
            aside = self._path.with_name(self._path.name + ".rejected")
            try:
                self._path.replace(aside)
                where, kept_as = str(aside), f"kept as {aside.name}"
            except OSError as moved:  # gone or unmovable: say so, still start on what shipped
                where, kept_as = "no", f"not kept: {moved.strerror or moved}"
            log.error("policy.last_good_rejected path=%s kept=%s reason=%s", self._path, where,
                      exc)
            self.load_error: str | None = f"{exc} ({kept_as})"
            saved = None
        else:
            self.load_error = None
        if saved is None:
            kept = None
            if self._cache is not None:
                kept = self._cache.policy("shipped", files_digest(read_folder(DEFAULT_DIR)))
            saved = self._loaded(("shipped",), kept)
            assert saved is not None
        return self._active_policy(*saved)

    def _last_good_bytes(self) -> bytes | None:
        """``policy.json`` as it is now, or None (none saved yet)."""
        try:
            return self._path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise bundles.BundleError(f"{self._path}: cannot read ({exc.strerror})") from None

    def _kept_bundle(self, data: bytes) -> Path | None:
        """Where the policy of a bundle verified with this holder's key is kept."""
        return None if self._cache is None else self._cache.policy("last_good", data,
                                                                   self._raw_key)  # fmt: skip

    def _loaded(self, request: tuple[object, ...], kept: Path | None
                ) -> tuple[int, Policy, str] | None:  # fmt: skip
        if kept is not None and self._cache is not None:  # (kept is named by the cache)
            found = self._cache.load(kept)
            if _is_loaded(found):
                log.info("policy.loaded step=%s kept=yes", request[0])
                return found  # type: ignore[no-any-return]
        return policy_child.loaded(request, kept)

    def _active_policy(self, version: int, policy: Policy, source: str) -> ActivePolicy:
        return ActivePolicy(version, policy, clock=self._clock, in_child=True, source=source,
                            cache=self._cache)  # fmt: skip

    def current(self) -> ActivePolicy:
        return self._active

    @property
    def version(self) -> int:
        return self._active.version

    def subscribe(self, listener: Callable[[ActivePolicy], None]) -> None:
        """Call listener(new) from the applying thread whenever a new policy is applied."""
        self._listeners.append(listener)

    def apply(self, data: bytes) -> ActivePolicy:
        """Verify and apply a bundle. Raises rules.bundle.BundleError (forged, corrupt, not
        newer) or PolicyError; the current policy then stays as it was."""
        with self._lock:
            installed = self._active.version
            got = policy_child.loaded(("bundle", data, self._raw_key, installed),
                                      self._kept_bundle(data))  # fmt: skip
            assert got is not None
            version, policy, source = got
            bundles.save_last_good(self._path, bundles.Bundle(version, policy, {}, data))
            self._active = self._active_policy(version, policy, source)
        log.info("policy.applied version=%d previous=%d", version, installed)
        for listener in self._listeners:
            listener(self._active)
        return self._active


def _is_loaded(found: object) -> bool:
    """Whether a kept answer has the shape of a loaded policy (a file of another kind
    under this name is not used)."""
    return (isinstance(found, tuple) and len(found) == 3 and isinstance(found[0], int)
            and isinstance(found[1], Policy) and isinstance(found[2], str))  # fmt: skip
