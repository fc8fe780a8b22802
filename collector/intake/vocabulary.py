"""The names an event may carry: those of every policy this collector published, and the shipped
one, kept in DIR/policy/vocabulary.json.

An agent runs the policy version it reported, but its outbox may still hold events made under an
older one (or under the policy shipped with it, version 0, before its first bundle), and it may
apply a newer one while its stream is open. So an event's names are checked against every
version that agent could have run: the union of every published bundle and the shipped policy.
A name no policy ever defined is the PC's own choice (protos/event_fields.py).

Loading a policy takes a second or two, so it is done once: `publish` adds the new version's
names to the file before it makes the version current (so no agent can hold a version whose
names are not in it yet), `serve` builds the file from every bundle when it is missing (a data
folder from before this file), and each verifier process reads the small file, again only when
an event names something it does not know (the fast path never touches the disk).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector.paths import DataDir, write_secret
from protos.event_fields import Vocabulary
from rules import bundle as bundles
from rules.load import load_policy
from rules.schema import Policy, PolicyError

log = logging.getLogger(__name__)

# Names the collector itself gives candidates that are not detections (collector/incidents/).
COLLECTOR_CATEGORIES = frozenset({
    "usb", "tampering", "test_alert", "capture_missing", "silent_agent", "storage", "other",
})  # fmt: skip
UNKNOWN = "unknown"  # what a page shows for a category no policy defines
_FIELDS = ("categories", "url_categories", "search_engines", "exemptions")


def path_of(data: DataDir) -> Path:
    return data.policy_dir / "vocabulary.json"


def of_policy(policy: Policy) -> Vocabulary:
    return Vocabulary(
        categories=frozenset(c.name for c in policy.categories),
        url_categories=frozenset(u.category for u in policy.urls),
        search_engines=frozenset(s.name for s in policy.search_engines),
        exemptions=frozenset(e.id for e in policy.exemptions),
    )


def shipped() -> Vocabulary:
    try:
        return of_policy(load_policy(None))
    except (PolicyError, OSError) as exc:  # a broken install: the published bundles still count
        log.error("vocabulary.shipped_unreadable error=%s", str(exc).splitlines()[0])
        return Vocabulary()


_shipped_memo: list[Vocabulary] = []


def _shipped_cached() -> Vocabulary:
    """The shipped policy is the same for the life of the process: load it once."""
    if not _shipped_memo:
        _shipped_memo.append(shipped())
    return _shipped_memo[0]


def read(path: Path) -> Vocabulary | None:
    """The file's vocabulary; None if it is missing or damaged."""
    try:
        found = json.loads(path.read_bytes())
        return Vocabulary(*(frozenset(str(x) for x in found[name]) for name in _FIELDS))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("vocabulary.unreadable path=%s error=%s", path, type(exc).__name__)
        return None


def _write(data: DataDir, vocab: Vocabulary) -> None:
    text = {name: sorted(getattr(vocab, name)) for name in _FIELDS}
    write_secret(path_of(data), json.dumps(text, indent=1).encode())


def add(data: DataDir, policy: Policy) -> None:
    """Add a policy's names (one about to be published) to the file."""
    known = read(path_of(data)) or build(data)
    _write(data, known | of_policy(policy))


def build(data: DataDir) -> Vocabulary:
    """The shipped policy's names and every published bundle's (slow: loads each one)."""
    known = _shipped_cached()
    key = Ed25519PublicKey.from_public_bytes(data.policy_pub.read_bytes())
    for path in sorted(data.policy_dir.glob("bundle-*.json")):
        try:
            known = known | of_policy(bundles.verify_bundle(path.read_bytes(), key).policy)
        except (PolicyError, OSError, ValueError) as exc:  # not ours or damaged: no agent runs it
            log.error("vocabulary.bundle_refused path=%s error=%s", path,
                      str(exc).splitlines()[0])  # fmt: skip
    return known


def ensure(data: DataDir) -> None:
    """Make the file if it is missing (a data folder from before it), before agents connect."""
    if read(path_of(data)) is None:
        _write(data, build(data))
        log.info("vocabulary.built path=%s", path_of(data))


class Reader:
    """A verifier's view of the file: read once, and again only when asked to after a miss."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp: float | None = None
        self._known = Vocabulary()
        self._fallback: Vocabulary | None = None
        self.refreshed()

    def current(self) -> Vocabulary:
        return self._known

    def refreshed(self) -> Vocabulary:
        """The file again if it changed since it was read (one stat when it has not)."""
        if self._path is not None:
            try:
                stamp = self._path.stat().st_mtime_ns
            except OSError:
                stamp = None
            if stamp is not None and stamp != self._stamp:
                found = read(self._path)
                if found is not None:
                    self._stamp, self._known = stamp, found
                    return found
            if self._stamp is not None:
                return self._known
        # No file (a verifier run on its own, in tests): the shipped policy's names.
        if self._fallback is None:
            self._fallback = shipped()
        self._known = self._fallback
        return self._known


def known_categories(data: DataDir) -> frozenset[str]:
    """Every category a policy defines, for pages (the shipped policy's if there is no file)."""
    found = read(path_of(data))
    if found is None:
        found = _shipped_cached()
    return found.all_categories


def shown(category: str, known: frozenset[str]) -> str:
    """A category as a page may show it: one a policy or the collector defines, else 'unknown'."""
    return category if category in known or category in COLLECTOR_CATEGORIES else UNKNOWN
