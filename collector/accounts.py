"""Console accounts: named staff with one role each, argon2id password hashes.

Roles follow a school's safeguarding team: the DSL and deputy DSL triage incidents; the head
teacher reads them, confirms referrals and gets the weekly report; the technician runs the
agents and never sees incident contents; governors see counts and trends, never names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from collector.store import Store, now_ms

ROLES = {
    "dsl": "Designated Safeguarding Lead",
    "deputy_dsl": "Deputy DSL",
    "head": "Head teacher",
    "technician": "Technician",
    "governor": "Governor",
}
# Who may do what. Checked by the console on every request.
CAN = {
    "incidents": {"dsl", "deputy_dsl", "head"},  # read incidents and their evidence
    "triage": {"dsl", "deputy_dsl", "head"},  # change status, outcome, notes, follow-ups
    "confirm_referral": {"dsl", "deputy_dsl", "head"},  # the second senior member of staff
    "approve_exemption": {"dsl", "head"},
    "request_exemption": {"dsl", "deputy_dsl", "head", "technician"},
    "audit": {"dsl", "deputy_dsl", "head"},
    "weekly_report": {"dsl", "deputy_dsl", "head"},
    "governors": {"dsl", "deputy_dsl", "head", "governor"},
    "agents": {"technician", "dsl"},  # health, tokens, revocation, rooms
    "settings": {"dsl", "head"},  # retention periods
}
MIN_PASSWORD = 12
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,39}$")
# argon2id (the library's default type) at RFC 9106's second recommended setting.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
# Checked against when the user does not exist, so both paths cost one argon2 verification.
_DUMMY = _hasher.hash("not a real password, only for timing")


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class Account:
    username: str
    display_name: str
    role: str

    def can(self, what: str) -> bool:
        return self.role in CAN[what]


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")


def add(store: Store, username: str, display_name: str, role: str, password: str) -> Account:
    if not _USERNAME.match(username):
        raise AccountError("a username is 2-40 lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of: {', '.join(ROLES)}")
    _check_password(password)
    if store.con.execute("SELECT 1 FROM accounts WHERE username = ?", [username]).fetchone():
        raise AccountError(f"{username!r} already exists")
    store.con.execute(
        "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, NULL)",
        [username, display_name or username, role, _hasher.hash(password), now_ms()],
    )
    return Account(username, display_name or username, role)


def set_password(store: Store, username: str, password: str) -> None:
    _check_password(password)
    found = store.con.execute(
        "UPDATE accounts SET password_hash = ? WHERE username = ? RETURNING username",
        [_hasher.hash(password), username],
    ).fetchall()
    if not found:
        raise AccountError(f"no account {username!r}")


def disable(store: Store, username: str) -> None:
    found = store.con.execute(
        "UPDATE accounts SET disabled_ms = ? WHERE username = ? RETURNING username",
        [now_ms(), username],
    ).fetchall()
    if not found:
        raise AccountError(f"no account {username!r}")


def listing(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    cur = con.execute(
        "SELECT username, display_name, role, created_ms, disabled_ms FROM accounts "
        "ORDER BY username"
    )
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def get(con: duckdb.DuckDBPyConnection, username: str) -> Account | None:
    row = con.execute(
        "SELECT username, display_name, role FROM accounts "
        "WHERE username = ? AND disabled_ms IS NULL",
        [username],
    ).fetchone()
    return None if row is None else Account(row[0], row[1], row[2])


def authenticate(con: duckdb.DuckDBPyConnection, username: str, password: str) -> Account | None:
    """The account if the password is right (slow by design: one argon2id verification)."""
    row = con.execute(
        "SELECT username, display_name, role, password_hash FROM accounts "
        "WHERE username = ? AND disabled_ms IS NULL",
        [username],
    ).fetchone()
    try:
        _hasher.verify(row[3] if row else _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return Account(row[0], row[1], row[2]) if row else None
