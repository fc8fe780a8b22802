"""Alerts about staff go to the head teacher, not the safeguarding team (KCSIE Part 4, the
LADO route): an allegation or concern about an adult who works with children is reported to
the head teacher, who decides with the Local Authority Designated Officer; colleagues who may
work beside that adult do not see it.

A candidate is about staff when its account is a member of staff in the roster (a staff row
of the MIS import, left or not: the alert stays with the head after the person leaves). Who
sees such a candidate: the head teacher; a DSL only while the school has no head teacher
account that can sign in (an alert must never be seen by no one); never a deputy DSL, and
governors and technicians see no incidents at all. docs/console.md says why.
"""

from __future__ import annotations

import duckdb

# True when the incident `i` is about a member of staff. Login names are compared without
# case (Windows logins are case-blind). An uncorrelated IN: DuckDB builds the small staff set
# once per query, where a correlated EXISTS cost the dashboard's eight queries ~100 ms more at
# 20,000 candidates.
ABOUT_STAFF = "lower(i.account) IN (SELECT lower(r.account) FROM roster r WHERE r.staff)"


def head_can_sign_in(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM accounts WHERE role = 'head' AND disabled_ms IS NULL "
        "AND NOT coalesce(awaiting_approval, false)"
    ).fetchone()
    return bool(row and row[0])


def sees_staff(con: duckdb.DuckDBPyConnection, role: str) -> bool:
    """Whether an account of this role sees candidates about staff."""
    if role == "head":
        return True
    if role == "dsl":
        return not head_can_sign_in(con)
    return False


def about_staff(con: duckdb.DuckDBPyConnection, incident_id: int) -> bool:
    row = con.execute(
        f"SELECT {ABOUT_STAFF} FROM incidents i WHERE i.id = ?",  # noqa: S608 -- a constant
        [incident_id],
    ).fetchone()
    return bool(row and row[0])


def account_is_staff(con: duckdb.DuckDBPyConnection, account: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM roster WHERE staff AND lower(account) = lower(?)", [account]
    ).fetchone()
    return bool(row and row[0])


def hidden_from(con: duckdb.DuckDBPyConnection, role: str, incident_id: int) -> bool:
    """The incident is about staff and this role does not see such alerts."""
    return about_staff(con, incident_id) and not sees_staff(con, role)
