"""The roster's pure parts: MIS header detection on SIMS-, Arbor- and Bromcom-like exports
(tests/data/roster/), the naming rule, and matching against a directory export."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.roster import matching, mis_csv
from collector.roster.book import assign
from collector.roster.mis_csv import RosterFileError

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parents[2] / "data" / "roster"


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_a_sims_export_gives_names_year_class_and_upn() -> None:
    rows = mis_csv.parse(read("sims.csv"))
    assert [(r.first, r.last, r.year, r.klass, r.upn) for r in rows] == [
        ("Cara", "Jones", "5", "5B", "A123456789012"),
        ("Ben", "O'Brien", "4", "4A", "B123456789012"),
        ("Zoë", "Smith-Lee", "R", "RC", "C123456789012"),
    ]
    assert not any(r.staff for r in rows)


def test_an_arbor_export_with_a_byte_order_mark_and_legal_names() -> None:
    rows = mis_csv.parse(read("arbor.csv"))
    assert [(r.first, r.last, r.year, r.klass, r.upn) for r in rows] == [
        ("Cara", "Jones", "5", "5B", ""),
        ("Amy", "Lee", "6", "6C", ""),
    ]


def test_a_bromcom_export_with_semicolons_and_a_staff_row() -> None:
    rows = mis_csv.parse(read("bromcom.csv"))
    assert [(r.first, r.year, r.klass, r.staff) for r in rows] == [
        ("Cara", "5", "5B", False),
        ("Pat", "", "", True),
    ]


def test_a_file_without_names_is_refused_saying_what_it_has() -> None:
    with pytest.raises(RosterFileError, match=r"no forename or surname column.*Pupil ID"):
        mis_csv.parse("Pupil ID,Year\n1,5\n")


@pytest.mark.parametrize(
    ("given", "shown"),
    [("Year 5", "5"), ("Y5", "5"), ("5", "5"), ("NC Year 6", "6"), ("Reception", "R"),
     ("Nursery", "N"), ("", "")],
)  # fmt: skip
def test_year_spellings(given: str, shown: str) -> None:
    assert mis_csv.year_shown(given) == shown


def test_the_naming_rule_lowers_and_drops_spaces_apostrophes_and_accents() -> None:
    rows = mis_csv.parse(read("sims.csv"))
    assert [matching.by_rule(r, "{first}.{last}") for r in rows] == [
        "cara.jones", "ben.obrien", "zoe.smithlee"]  # fmt: skip
    assert matching.by_rule(rows[0], "pupil.{first}{last[1]}") == "pupil.caraj"


def test_an_unusable_naming_rule_is_refused() -> None:
    with pytest.raises(RosterFileError, match="naming rule"):
        matching.check_rule("{firstname}.{surname}")


def test_directory_matching_by_upn_then_by_name_and_shared_names_unmatched() -> None:
    text = read("sims.csv") + "John,Smith,Year 6,6C,\n"
    matched, unmatched, duplicates = assign(mis_csv.parse(text), None, read("directory.csv"))
    assert matched.keys() == {"pupil.cara", "b.obrien"}
    assert duplicates == []
    assert any("Zoë Smith-Lee (no account with this name" in u for u in unmatched)
    assert any("John Smith (several accounts have this name: jsmith1, jsmith2" in u
               for u in unmatched)  # fmt: skip


def test_two_rows_giving_one_account_are_both_left_out_and_reported() -> None:
    text = "Forename,Surname\nSam,Patel\nSam,Patel\nAli,Khan\n"
    matched, unmatched, duplicates = assign(mis_csv.parse(text), "{first}.{last}", None)
    assert list(matched) == ["ali.khan"] and unmatched == []
    assert duplicates and duplicates[0].startswith("sam.patel: lines 2, 3")


def test_a_userprincipalname_gives_its_login_part() -> None:
    d = matching.read_directory(
        "userPrincipalName,displayName\nCara.Jones@school.sch.uk,Cara Jones\n"
    )
    assert d.match(mis_csv.parse("Forename,Surname\nCara,Jones\n")[0]) == ("cara.jones", [])


def test_a_display_name_written_surname_first() -> None:
    d = matching.read_directory('sAMAccountName,displayName\ncjones,"Jones, Cara May"\n')
    assert d.match(mis_csv.parse("Forename,Surname\nCara,Jones\n")[0]) == ("cjones", [])
