"""Console accounts: named staff with one role each, argon2id password hashes.

Roles follow a school's safeguarding team: the DSL and deputy DSL triage incidents; the head
teacher reads them, confirms referrals and gets the weekly report; the technician runs the
agents and never sees incident contents; governors see counts and trends, never names.

A senior role (DSL, deputy DSL, head teacher) given in the console waits for a second senior
member of staff to approve it (`approve`): until then the account cannot sign in, so one DSL
cannot make herself a colleague to confirm her own referral. The command line (`user add`, run
by whoever administers the server, who could edit the database anyway) sets up the first
accounts without it; docs/console.md has the threat model.

A password someone else set (a new account's, a reset one, the installer's first DSL's) is
temporary: the account is flagged `must_change_password` and the console lets it do nothing
but choose its own. Hashing is slow by design (about a quarter of a second), so callers on the
console hash with `hash_password` off the single writer and store the result with `add` or
`set_password`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

import duckdb
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from collector import two_factor
from collector.storage.store import Store, now_ms

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
    "screenshots": {"dsl", "deputy_dsl", "head"},  # see a screenshot (each view audited)
    "triage": {"dsl", "deputy_dsl", "head"},  # change status, outcome, notes, follow-ups
    "confirm_referral": {"dsl", "deputy_dsl", "head"},  # the second senior member of staff
    "approve_exemption": {"dsl", "head"},
    "request_exemption": {"dsl", "deputy_dsl", "head", "technician"},
    "audit": {"dsl", "deputy_dsl", "head"},
    "weekly_report": {"dsl", "deputy_dsl", "head"},
    "governors": {"dsl", "deputy_dsl", "head", "governor"},
    "agents": {"technician", "dsl"},  # health, tokens, revocation, rooms
    "settings": {"dsl", "head"},  # retention periods
    "manage_accounts": {"dsl", "head"},  # add, reset, disable console accounts
    "approve_role": {"dsl", "head"},  # the second senior who approves a senior role
    "roster": {"dsl", "head"},  # import the MIS roster, see what it holds and left out
    "dpia": {"dsl", "head"},  # the DPIA draft and privacy notices, from the live settings
}
SENIOR = frozenset({"dsl", "deputy_dsl", "head"})  # roles that see and decide on incidents
MIN_PASSWORD = 12
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,39}$")
# argon2id (the library's default type) at RFC 9106's second recommended setting.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
# Checked against when the user does not exist, so both paths cost one argon2 verification.
_DUMMY = _hasher.hash("not a real password, only for timing")
# Temporary passwords: no look-alike characters (0/o, 1/l/i), read off a screen and typed once.
_TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_TEMPORARY_GROUPS, _TEMPORARY_GROUP = 5, 4  # 20 symbols from 31: about 99 bits


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class PasswordHash:
    """An argon2id hash made by `hash_password`: what `add` and `set_password` store as is."""

    encoded: str = field(repr=False)


@dataclass(frozen=True)
class Account:
    username: str
    display_name: str
    role: str
    must_change: bool = False
    # Changes whenever the password does (a digest of its hash, which has a fresh salt each
    # time), so a session made before a change can be told apart from one made after it.
    stamp: str = field(default="", repr=False, compare=False)
    # Has a second factor (collector/two_factor.py); roles that need one and have none yet
    # reach nothing but setting it up.
    two_factor: bool = False
    awaiting_approval: bool = False  # a senior role no second senior has approved yet

    @property
    def must_enrol(self) -> bool:
        return self.role in two_factor.NEEDS and not self.two_factor

    def can(self, what: str) -> bool:
        return self.role in CAN[what]


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")


def check_new(username: str, role: str) -> None:
    """The rules for a new account's username and role (its password is checked when hashed)."""
    if not _USERNAME.match(username):
        raise AccountError("a username is 2-40 lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of: {', '.join(ROLES)}")


def hash_password(password: str) -> PasswordHash:
    """Check a new password against the rules and hash it with argon2id (slow by design)."""
    _check_password(password)
    return PasswordHash(_hasher.hash(password))


def temporary_password() -> str:
    """A strong password for someone else to type once and then replace, e.g. k7mq-2xt9-..."""
    groups = (
        "".join(secrets.choice(_TEMPORARY_ALPHABET) for _ in range(_TEMPORARY_GROUP))
        for _ in range(_TEMPORARY_GROUPS)
    )
    return "-".join(groups)


def _stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def add(
    store: Store,
    username: str,
    display_name: str,
    role: str,
    password: str | PasswordHash,
    *,
    must_change: bool,
    created_by: str = "",
    awaiting_approval: bool = False,
) -> Account:
    """A new account. `password` is a plain password (hashed here, on the caller's thread) or a
    `PasswordHash` from `hash_password`; `must_change` says whether it is temporary;
    `created_by`: the console account that made it ("cli:<user>" from the command line), so it
    cannot be the second person on its maker's referral; `awaiting_approval`: it cannot sign in
    until a second senior approves it (`approve`)."""
    check_new(username, role)
    hashed = (password if isinstance(password, PasswordHash) else hash_password(password)).encoded
    if store.con.execute("SELECT 1 FROM accounts WHERE username = ?", [username]).fetchone():
        raise AccountError(f"{username!r} already exists")
    now = now_ms()
    store.con.execute(
        "INSERT INTO accounts (username, display_name, role, password_hash, created_ms, "
        "disabled_ms, must_change_password, password_changed_ms, created_by, awaiting_approval) "
        "VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
        [username, display_name or username, role, hashed, now, must_change, now, created_by,
         awaiting_approval],
    )  # fmt: skip
    return Account(username, display_name or username, role, must_change, _stamp(hashed),
                   awaiting_approval=awaiting_approval)  # fmt: skip


def approve(store: Store, username: str, approver: Account) -> Account:
    """A second senior approves an account's senior role: never the account itself, never the
    one who made it. Call inside a transaction."""
    if not approver.can("approve_role") or approver.awaiting_approval:
        raise AccountError("only a DSL or the head teacher can approve a senior role")
    row = store.con.execute(
        "SELECT role, coalesce(created_by, ''), coalesce(awaiting_approval, false), disabled_ms "
        "FROM accounts WHERE username = ?",
        [username],
    ).fetchone()
    if row is None or row[3] is not None:
        raise AccountError(f"no enabled account {username!r}")
    role, created_by, waiting = str(row[0]), str(row[1]), bool(row[2])
    if not waiting:
        raise AccountError(f"{username!r} is not waiting for approval")
    if approver.username in (username, created_by):
        raise AccountError(f"{created_by} made this account, so a second senior member of staff "
                           "must approve its role: another DSL or the head teacher")  # fmt: skip
    store.con.execute(
        "UPDATE accounts SET awaiting_approval = false, approved_by = ?, approved_ms = ? "
        "WHERE username = ?",
        [approver.username, now_ms(), username],
    )
    account = get(store.con, username)
    assert account is not None, role
    return account


def set_password(
    store: Store, username: str, password: str | PasswordHash, *, must_change: bool
) -> Account:
    """Replace an account's password; `must_change` when someone else chose it."""
    hashed = (password if isinstance(password, PasswordHash) else hash_password(password)).encoded
    row = store.con.execute(
        "UPDATE accounts SET password_hash = ?, must_change_password = ?, "
        "password_changed_ms = ? WHERE username = ? "
        "RETURNING username, display_name, role, totp_secret IS NOT NULL",
        [hashed, must_change, now_ms(), username],
    ).fetchone()
    if row is None:
        raise AccountError(f"no account {username!r}")
    return Account(row[0], row[1], row[2], must_change, _stamp(hashed), bool(row[3]))


def disable(store: Store, username: str, *, keep_a_dsl: bool = True) -> bool:
    """Disable an account (False when it already was). With `keep_a_dsl`, refuse to disable
    the last enabled DSL, so the school is never left without someone who can manage accounts
    and triage incidents from the console."""
    row = store.con.execute(
        "SELECT role, disabled_ms FROM accounts WHERE username = ?", [username]
    ).fetchone()
    if row is None:
        raise AccountError(f"no account {username!r}")
    if row[1] is not None:
        return False
    if keep_a_dsl and row[0] == "dsl":
        others = store.con.execute(
            "SELECT count(*) FROM accounts WHERE role = 'dsl' AND disabled_ms IS NULL "
            "AND username <> ?",
            [username],
        ).fetchone()
        if not others or others[0] == 0:
            raise AccountError(
                f"{username!r} is the last enabled DSL account; add another DSL first"
            )
    store.con.execute(
        "UPDATE accounts SET disabled_ms = ? WHERE username = ?", [now_ms(), username]
    )
    return True


def logged_in(store: Store, username: str) -> None:
    store.con.execute(
        "UPDATE accounts SET last_login_ms = ? WHERE username = ?", [now_ms(), username]
    )


def listing(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    cur = con.execute(
        "SELECT username, display_name, role, created_ms, disabled_ms, must_change_password, "
        "password_changed_ms, last_login_ms, totp_secret IS NOT NULL AS two_factor, "
        "coalesce(awaiting_approval, false) AS awaiting_approval, coalesce(created_by, '') "
        "AS created_by, approved_by FROM accounts ORDER BY username"
    )
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


_COLUMNS = (
    "username, display_name, role, must_change_password, password_hash, totp_secret IS NOT NULL, "
    "coalesce(awaiting_approval, false)"
)


def _account(row: tuple[str, str, str, bool, str, bool, bool]) -> Account:
    return Account(row[0], row[1], row[2], bool(row[3]), _stamp(row[4]), bool(row[5]),
                   bool(row[6]))  # fmt: skip


def get(con: duckdb.DuckDBPyConnection, username: str) -> Account | None:
    """The enabled account as it is now (its flag and password stamp included); one waiting
    for approval of its role is not (it has no session)."""
    row = con.execute(
        f"SELECT {_COLUMNS} FROM accounts WHERE username = ? AND disabled_ms IS NULL "  # noqa: S608 -- a constant column list
        "AND NOT coalesce(awaiting_approval, false)",
        [username],
    ).fetchone()
    return None if row is None else _account(row)


def authenticate(con: duckdb.DuckDBPyConnection, username: str, password: str) -> Account | None:
    """The account if the password is right (slow by design: one argon2id verification). It
    may be awaiting approval: the caller says so instead of signing it in."""
    row = con.execute(
        f"SELECT {_COLUMNS} FROM accounts WHERE username = ? AND disabled_ms IS NULL",  # noqa: S608 -- a constant column list
        [username],
    ).fetchone()
    try:
        _hasher.verify(row[4] if row else _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return _account(row) if row else None
