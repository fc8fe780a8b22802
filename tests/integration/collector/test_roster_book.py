"""The roster in a real DuckDB: import, re-import with a class change and a leaver, namesakes
of rows left out stay, every import audited, and retention purges a leaver's row (but not
while an incident still names the account)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.integrity import audit
from collector.roster import book
from collector.roster.mis_csv import RosterFileError
from collector.storage import retention
from collector.storage.store import Store

pytestmark = pytest.mark.integration
DAY = retention.DAY_MS
FIRST = (
    "Forename,Surname,Year,Reg Group\nCara,Jones,Year 5,5B\nBen,Okafor,Year 4,4A\nAmy,Lee,6,6C\n"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "c.duckdb")
    try:
        yield s
    finally:
        s.close()


def test_reimport_updates_a_class_marks_a_leaver_and_a_return(store: Store) -> None:
    a, now = audit.Audit(b"k" * 32), 1_800_000_000_000
    r = book.import_csv(store, a, "dsl", FIRST, naming="pupil.{first}", now=now)
    assert (r.added, r.left) == (3, 0)
    names = book.names(store.con)
    assert book.shown(names, "pupil.cara") == "Cara Jones (Y5, 5B) pupil.cara"
    assert book.shown(names, "pupil.zed") == "pupil.zed"  # not on the roster: the account alone
    # Cara moves to 5C, Amy has left.
    second = "Forename,Surname,Year,Reg Group\nCara,Jones,Year 5,5C\nBen,Okafor,Year 4,4A\n"
    r = book.import_csv(store, a, "dsl", second, naming="pupil.{first}", now=now + DAY)
    assert (r.added, r.updated, r.unchanged, r.left) == (0, 1, 1, 1)
    names = book.names(store.con)
    assert book.shown(names, "pupil.cara") == "Cara Jones (Y5, 5C) pupil.cara"
    assert book.shown(names, "pupil.amy") == "Amy Lee (left, Y6, 6C) pupil.amy"
    assert book.summary(store.con)["left"] == 1
    r = book.import_csv(store, a, "dsl", FIRST, naming="pupil.{first}", now=now + 2 * DAY)
    assert r.returned == 1 and book.summary(store.con)["left"] == 0
    rows = [e for e in audit.read(store.con) if e["action"] == "roster_imported"]
    assert len(rows) == 3 and "left=1" in rows[1]["detail"]
    assert a.verify(store.con).ok


def test_a_row_left_out_does_not_mark_its_namesake_left(store: Store) -> None:
    a = audit.Audit(b"k" * 32)
    book.import_csv(store, a, "dsl", FIRST, naming="pupil.{first}")
    # Now two Caras: both rows claim pupil.cara, neither is imported, and Cara stays.
    text = FIRST + "Cara,Jones,Year 3,3A\n"
    r = book.import_csv(store, a, "dsl", text, naming="pupil.{first}")
    assert r.left == 0 and r.duplicates and r.duplicates[0].startswith("pupil.cara: lines 2, 5")


def test_a_file_matching_no_account_changes_nothing(store: Store) -> None:
    a = audit.Audit(b"k" * 32)
    book.import_csv(store, a, "dsl", FIRST, naming="pupil.{first}")
    with pytest.raises(RosterFileError, match="no row of the 3"):
        book.import_csv(store, a, "dsl", FIRST, directory="sAMAccountName,displayName\nx,X Y\n")
    assert book.summary(store.con)["pupils"] == 3


def test_retention_purges_a_leavers_row_once_no_incident_names_it(store: Store) -> None:
    a, now = audit.Audit(b"k" * 32), 1_800_000_000_000
    book.import_csv(store, a, "dsl", FIRST, naming="pupil.{first}", now=now - 400 * DAY)
    book.import_csv(store, a, "dsl", "Forename,Surname\nCara,Jones\n", naming="pupil.{first}",
                    now=now - 380 * DAY)  # fmt: skip
    store.con.execute(
        "INSERT INTO incidents (id, kind, category, categories, severity, base_severity, "
        "agent_id, account, first_ms, last_ms, created_ms, updated_ms, summary) VALUES "
        "(1, 'detection', 'bullying', 'bullying', 3, 3, 'ag-1', 'pupil.ben', 0, 0, 0, 0, 's')"
    )
    got = retention.purge(store, a, "dsl", now=now)
    assert got["roster_left"] == 1  # Amy's; Ben's stays while his incident is kept
    assert set(book.names(store.con)) == {"pupil.cara", "pupil.ben"}
    assert "roster_left=1" in audit.read(store.con)[0]["detail"]
