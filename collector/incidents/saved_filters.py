"""Saved filters (issue 17 item 5): a member of the safeguarding team keeps the incident list's
filters under a name ("Y6 grooming this term", "Mine, severity 4+") and finds them as links on
the list. Per account: no one sees another's. Saving and deleting run on the single writer and
are audited; the query stored is the list's own query string, rebuilt by the console from the
filters it understood, so nothing else is kept or replayed."""

from __future__ import annotations

import duckdb

from collector.accounts import Account
from collector.integrity.audit import Audit
from collector.storage.store import Store, now_ms

MAX_NAME = 40
MAX_QUERY = 600  # the list's filters at their longest, encoded, fit well within this
MAX_PER_ACCOUNT = 30  # a list of links a person can still read


class SavedFilterError(ValueError):
    pass


def listing(con: duckdb.DuckDBPyConnection, username: str) -> list[tuple[str, str]]:
    """(name, query) of this account's saved filters, by name."""
    rows = con.execute(
        "SELECT name, query FROM saved_filters WHERE username = ? ORDER BY lower(name), name",
        [username],
    ).fetchall()
    return [(str(n), str(q)) for n, q in rows]


def clean_name(name: str) -> str:
    """The name as kept: spaces collapsed, no control characters; an error says what's wrong."""
    text = " ".join("".join(ch for ch in name if ch.isprintable()).split())
    if not text:
        raise SavedFilterError("Give the filter a name.")
    if len(text) > MAX_NAME:
        raise SavedFilterError(f"A filter's name is at most {MAX_NAME} characters.")
    return text


def save(store: Store, audit: Audit, who: Account, name: str, query: str) -> str:
    """Keep (or replace) `query` under `name` for this account; returns the name as kept."""
    name = clean_name(name)
    if len(query) > MAX_QUERY:
        raise SavedFilterError("These filters are too long to save.")
    with store.transaction() as con:
        row = con.execute(
            "SELECT count(*) FILTER (WHERE name <> ?), count(*) FILTER (WHERE name = ?) "
            "FROM saved_filters WHERE username = ?",
            [name, name, who.username],
        ).fetchone()
        others, same = row if row else (0, 0)
        if others >= MAX_PER_ACCOUNT:
            raise SavedFilterError(f"You have {MAX_PER_ACCOUNT} saved filters: delete one first.")
        con.execute(
            "INSERT INTO saved_filters VALUES (?, ?, ?, ?) ON CONFLICT (username, name) "
            "DO UPDATE SET query = excluded.query, created_ms = excluded.created_ms",
            [who.username, name, query, now_ms()],
        )
        audit.append(store, who.username, "filter_saved", f"user:{who.username}",
                     f"name={name!r} query={query!r}" + (" replaced" if same else ""))  # fmt: skip
    return name


def delete(store: Store, audit: Audit, who: Account, name: str) -> bool:
    """Forget one of this account's saved filters; False when it had none of that name."""
    with store.transaction() as con:
        row = con.execute(
            "DELETE FROM saved_filters WHERE username = ? AND name = ? RETURNING query",
            [who.username, name],
        ).fetchone()
        if row is None:
            return False
        audit.append(store, who.username, "filter_deleted", f"user:{who.username}",
                     f"name={name!r} query={row[0]!r}")  # fmt: skip
    return True
