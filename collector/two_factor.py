"""Two-factor sign-in for the console: TOTP (RFC 6238, the codes of any authenticator app)
and single-use recovery codes.

The DfE's cyber security standards for schools ask for a second factor on accounts that reach
sensitive data: the DSL, deputy, head and technician (the technician runs the agents). A
governor sees only counts. TOTP codes come from pyotp; a code is accepted for the step before
and after the current one (phones drift), and never for a step at or before the last one that
was accepted, so a code seen over a shoulder cannot be used again. Recovery codes are random
(about 60 bits each), shown once, stored as SHA-256 digests and crossed out when used.
All writes here run on the single writer, which makes "check, then record the step" atomic.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import duckdb
import pyotp

from collector.storage.store import Store, now_ms

NEEDS = frozenset({"dsl", "deputy_dsl", "head", "technician"})
ISSUER = "Safeguarding console"
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)


def needs(role: str) -> bool:
    return role in NEEDS


def new_secret() -> str:
    return pyotp.random_base32()


def uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app reads (as a QR code or pasted)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(text: str) -> str:
    """The URI as a QR code, an inline SVG (no script, no image request: the console's
    security policy allows neither), for the phone's camera."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=4, border=4, xmldecl=False,
                                     svgns=True, title="QR code of the setup link",
                                     svgclass="totp-qr")  # fmt: skip
    return out.getvalue().decode()


def current_code(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret).at(at if at is not None else time.time())


def matching_step(secret: str, code: str, after: int | None, at: float | None = None) -> int | None:
    """The time step `code` is valid for (one step of drift either way), if later than
    `after`; None when it matches no step or only one already used."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = at if at is not None else time.time()
    step = int(now // totp.interval)
    for s in (step - 1, step, step + 1):
        if (after is None or s > after) and hmac.compare_digest(totp.generate_otp(s), code):
            return s
    return None


def new_recovery_codes() -> list[str]:
    def one() -> str:
        return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(3))

    return [one() for _ in range(RECOVERY_CODES)]


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.strip().lower().encode()).digest()


def enrol(store: Store, username: str, secret: str, codes: list[str]) -> None:
    """Give the account its secret and a fresh set of recovery codes (the old ones end)."""
    store.con.execute(
        "UPDATE accounts SET totp_secret = ?, totp_last_step = NULL WHERE username = ?",
        [secret, username],
    )
    store.con.execute("DELETE FROM recovery_codes WHERE username = ?", [username])
    for code in codes:
        store.con.execute(
            "INSERT INTO recovery_codes VALUES (?, ?, NULL)", [username, _digest(code)]
        )


def clear(store: Store, username: str) -> None:
    """No second factor (a reset for someone locked out): set up again at the next login."""
    store.con.execute(
        "UPDATE accounts SET totp_secret = NULL, totp_last_step = NULL WHERE username = ?",
        [username],
    )
    store.con.execute("DELETE FROM recovery_codes WHERE username = ?", [username])


def enrolled(con: duckdb.DuckDBPyConnection, username: str) -> bool:
    row = con.execute(
        "SELECT totp_secret IS NOT NULL FROM accounts WHERE username = ? AND disabled_ms IS NULL",
        [username],
    ).fetchone()
    return bool(row and row[0])


def check(con: duckdb.DuckDBPyConnection, username: str, code: str) -> bool:
    """Would `use` accept this code? (A read: nothing is recorded.)"""
    row = con.execute(
        "SELECT totp_secret, totp_last_step FROM accounts WHERE username = ? "
        "AND disabled_ms IS NULL",
        [username],
    ).fetchone()
    if row is None or row[0] is None or not code:
        return False
    if matching_step(row[0], code, row[1]) is not None:
        return True
    found = con.execute(
        "SELECT 1 FROM recovery_codes WHERE username = ? AND code_hash = ? AND used_ms IS NULL",
        [username, _digest(code[:40])],
    ).fetchone()
    return found is not None


def use(store: Store, username: str, code: str, at: float | None = None) -> str | None:
    """Check a code and use it up (on the writer). Returns "totp" or "recovery", or None."""
    row = store.con.execute(
        "SELECT totp_secret, totp_last_step FROM accounts WHERE username = ? "
        "AND disabled_ms IS NULL",
        [username],
    ).fetchone()
    if row is None or row[0] is None or not code:
        return None
    step = matching_step(row[0], code, row[1], at)
    if step is not None:
        store.con.execute(
            "UPDATE accounts SET totp_last_step = ? WHERE username = ?", [step, username]
        )
        return "totp"
    if len(code) > 40:
        return None
    used = store.con.execute(
        "UPDATE recovery_codes SET used_ms = ? WHERE username = ? AND code_hash = ? "
        "AND used_ms IS NULL RETURNING 1",
        [now_ms(), username, _digest(code)],
    ).fetchall()
    return "recovery" if used else None


def recovery_left(con: duckdb.DuckDBPyConnection, username: str) -> int:
    row = con.execute(
        "SELECT count(*) FROM recovery_codes WHERE username = ? AND used_ms IS NULL", [username]
    ).fetchone()
    return int(row[0]) if row else 0
