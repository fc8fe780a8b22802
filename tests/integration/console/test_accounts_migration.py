"""Migration 3 (temporary passwords, last login) on a database the previous schema made: the
accounts already there keep working and are not flagged; new ones can be."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from argon2 import PasswordHasher

from collector import accounts
from collector.storage.schema import MIGRATIONS
from collector.storage.store import Store

pytestmark = pytest.mark.integration
OLD = 2  # the schema version before accounts could be flagged
PASSWORD = "correct horse battery staple"


def old_database(path: Path) -> None:
    """What Store.migrate made before migration 3, with an account added the old way."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
    for number, sql in enumerate(MIGRATIONS[:OLD], start=1):
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?)", [number])
    hashed = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    con.execute(
        "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, NULL)",
        ["dana", "Dana Lead", "dsl", hashed, 1_700_000_000_000],
    )
    con.execute(
        "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
        ["old.tech", "Old Tech", "technician", hashed, 1_700_000_000_000, 1_700_000_500_000],
    )
    con.close()


def test_migration_adds_the_flag_to_an_existing_database(tmp_path: Path) -> None:
    path = tmp_path / "collector.duckdb"
    old_database(path)
    store = Store(path)
    try:
        versions = store.con.execute("SELECT max(version) FROM schema_version").fetchone()
        assert versions == (len(MIGRATIONS),)
        rows = {r["username"]: r for r in accounts.listing(store.con)}
        assert rows["dana"]["must_change_password"] is False
        assert rows["dana"]["password_changed_ms"] == 1_700_000_000_000
        assert rows["dana"]["last_login_ms"] is None
        assert rows["old.tech"]["disabled_ms"] == 1_700_000_500_000
        me = accounts.authenticate(store.con, "dana", PASSWORD)
        assert me is not None and me.role == "dsl" and not me.must_change
        assert accounts.authenticate(store.con, "old.tech", PASSWORD) is None  # still disabled
        made = accounts.add(store, "dev", "Dev", "deputy_dsl", PASSWORD, must_change=True)
        assert made.must_change
        accounts.logged_in(store, "dana")
        rows = {r["username"]: r for r in accounts.listing(store.con)}
        assert rows["dev"]["must_change_password"] is True and rows["dana"]["last_login_ms"]
    finally:
        store.close()
    # Opening it again runs nothing twice.
    again = Store(path)
    try:
        count = again.con.execute("SELECT count(*) FROM schema_version").fetchone()
        assert count == (len(MIGRATIONS),)
    finally:
        again.close()
