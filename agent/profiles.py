"""Which profile (KS1, KS2, staff, ...) applies to an OS account.

Decided in this order, first match wins:
  1. the policy's `[[assign]]` entries naming the account (`account = "jsmith"`);
  2. the policy's `[[assign]]` entries naming a local group the account belongs to
     (`group = "safeguard-staff"`), in the order the policy lists them;
  3. the policy's `default_profile` (shipped: "ks2", so an account nobody has sorted into a
     group is still protected as a pupil).
Group membership is read from the OS (grp/pwd on Linux: the primary group and supplementary
groups; on Windows the local groups are not read yet, so only account entries and the default
apply). The pure decision (`choose`) is apart from the OS lookup (`local_groups`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable

from rules.schema import Policy, Profile

log = logging.getLogger(__name__)

FALLBACK = "ks2"  # used when a policy names no default_profile


def local_groups(account: str) -> frozenset[str]:
    """The names of the local groups an account belongs to (empty when unknown)."""
    if sys.platform == "win32":
        return frozenset()
    import grp
    import pwd

    try:
        primary = pwd.getpwnam(account).pw_gid
    except KeyError:
        return frozenset()
    names = {g.gr_name for g in grp.getgrall() if account in g.gr_mem}
    with contextlib.suppress(KeyError):  # a primary gid with no group entry
        names.add(grp.getgrgid(primary).gr_name)
    return frozenset(names)


def choose(policy: Policy, account: str, groups: Iterable[str]) -> Profile:
    """The profile for an account that is in `groups` (pure: no OS lookups)."""
    member = set(groups)
    assignments = policy.assignments
    for rule in assignments:
        if rule.account and rule.account.casefold() == account.casefold():
            return policy.profile(rule.profile)
    for rule in assignments:
        if rule.group and rule.group in member:
            return policy.profile(rule.profile)
    return policy.profile(policy.default_profile or FALLBACK)


class ProfileCache:
    """profile_for(account) per policy object: group lookups are not repeated per keystroke."""

    def __init__(self) -> None:
        self._policy: Policy | None = None
        self._known: dict[str, Profile] = {}

    def profile_for(self, policy: Policy, account: str) -> Profile:
        if policy is not self._policy:
            self._policy, self._known = policy, {}
        found = self._known.get(account)
        if found is None:
            found = choose(policy, account, local_groups(account))
            self._known[account] = found
            log.info("profile.assigned account=%s profile=%s", account, found.name)
        return found


def profile_for(policy: Policy, account: str) -> Profile:
    """The profile for an OS account, looking up its local groups."""
    return choose(policy, account, local_groups(account))
