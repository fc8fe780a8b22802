"""Profiles following the year group (issue 17 item 1; a privacy choice, off by default).

A PC picks each login's profile (KS1, KS2, staff) from the policy: an `[[assign]]` naming the
account, else one naming a local group it is in, else the default (agent/profiles.py). With this
switched on (`safeguard-collector roster profiles on`), every policy the collector publishes
carries one `[[assign]] account = "<login>" profile = "<profile>"` per current roster row:
Nursery, Reception, Y1 and Y2 KS1; Y3 to Y6 KS2; staff rows staff. A roster import publishes
again, so a pupil moving up a year is protected as the older child from the next policy fetch.

The cost, said in the DPIA pack: every PC receives every pupil's login name with a profile
(and no name, year group, class or UPN: those stay on the collector). Off, PCs receive no
login names at all. A school that sorts pupils into local groups does not need it. An
`[[assign]]` the school wrote for an account comes first in the policy, so it still wins.
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb

from collector.integrity.audit import Audit
from collector.storage.store import Store

log = logging.getLogger(__name__)
SETTING = "roster.profiles"
KS1_YEARS = frozenset({"N", "R", "1", "2"})
KS2_YEARS = frozenset({"3", "4", "5", "6"})


def profile_of(year: str, staff: bool) -> str | None:
    """The profile a roster row gives; None for a year a primary has no profile for."""
    if staff:
        return "staff"
    if year in KS1_YEARS:
        return "ks1"
    if year in KS2_YEARS:
        return "ks2"
    return None


def enabled(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT value FROM settings WHERE key = ?", [SETTING]).fetchone()
    return bool(row and row[0] == "on")


def set_enabled(store: Store, audit: Audit, actor: str, on: bool) -> bool:
    """Switch it; returns whether it changed. Audited either way the switch goes."""
    with store.transaction() as con:
        was = enabled(con)
        con.execute(
            "INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
            "excluded.value", [SETTING, "on" if on else "off"],
        )  # fmt: skip
        audit.append(store, actor, "roster_profiles", "roster",
                     f"{'on' if on else 'off'} (was {'on' if was else 'off'})")  # fmt: skip
    return was != on


def assignments(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(login, profile) for every current roster row with a profile, when switched on; [] when
    off. Only these two fields leave the collector."""
    if not enabled(con):
        return []
    rows = con.execute(
        "SELECT account, year, staff FROM roster WHERE left_ms IS NULL ORDER BY account"
    ).fetchall()
    return [(str(a), p) for a, year, staff in rows if (p := profile_of(str(year), bool(staff)))]


def assign_toml(pairs: list[tuple[str, str]], known: set[str]) -> tuple[str, int]:
    """The `[[assign]]` entries to add to a policy's profiles.toml, and how many pairs were
    left out because the policy defines no such profile (logged by the caller)."""
    import json

    lines = ["", "# From the school roster: profiles follow the year group (collector roster)."]
    skipped = 0
    for account, profile in pairs:
        if profile not in known:
            skipped += 1
            continue
        lines += ["[[assign]]", f"account = {json.dumps(account)}",
                  f"profile = {json.dumps(profile)}", ""]  # fmt: skip
    return "\n".join(lines), skipped


def summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """For the roster page and `roster show`: on or off, and how many logins it assigns."""
    return {"on": enabled(con), "assigned": len(assignments(con))}
