"""Pupils from an MIS export (SIMS, Arbor, Bromcom): pure parsing, text in, rows out.

Each MIS spells its columns its own way; `detect` maps the header to our fields, and `parse`
reads the rows. A file without a forename and surname column is refused with a message naming
what was found, since guessing would put one child's name on another's account."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

# Our field: the header spellings seen in SIMS, Arbor and Bromcom exports (compared folded:
# lower case, no spaces, dots, dashes or underscores).
HEADERS: dict[str, tuple[str, ...]] = {
    "first": ("forename", "legalforename", "firstname", "preferredforename", "givenname"),
    "last": ("surname", "legalsurname", "lastname", "preferredsurname", "familyname"),
    "year": ("year", "yeargroup", "ncyear", "nationalcurriculumyear", "yr"),
    "klass": ("reggroup", "registrationgroup", "form", "class", "tutorgroup", "formgroup"),
    "upn": ("upn", "uniquepupilnumber"),
    "role": ("role", "staff", "stafftype"),
}
REQUIRED = ("first", "last")
_YEAR = re.compile(r"^(?:y(?:ear)?\s*)?(\w+)$", re.IGNORECASE)
_STAFF_WORDS = {"staff", "teacher", "ta", "yes", "y", "true", "1", "support staff"}


class RosterFileError(ValueError):
    """The file cannot be read as a roster; the message says why and what to do."""


@dataclass(frozen=True)
class MisRow:
    line: int  # in the file, for messages
    first: str
    last: str
    year: str  # as shown: "5", "R", "N" ("" if none)
    klass: str
    upn: str
    staff: bool


def fold(header: str) -> str:
    return re.sub(r"[\s._\-]", "", header.strip().lstrip("\ufeff").lower())


def detect(header: list[str]) -> dict[str, int]:
    """Our field -> column index. The first matching column wins (Arbor exports both Legal and
    Preferred names; legal comes first in our lists only when the file has no plain one)."""
    folded = [fold(h) for h in header]
    found: dict[str, int] = {}
    for field, names in HEADERS.items():
        for name in names:
            if name in folded:
                found[field] = folded.index(name)
                break
    missing = [f for f in REQUIRED if f not in found]
    if missing:
        raise RosterFileError(
            "the file has no "
            + " or ".join({"first": "forename", "last": "surname"}[m] for m in missing)
            + f" column (its header: {', '.join(h.strip() for h in header)[:200]}). Export "
            "pupils from the MIS with Forename, Surname, Year and Reg Group columns."
        )
    return found


def year_shown(value: str) -> str:
    """'Year 5', 'Y5', '5', 'NC Year 5' -> '5'; 'Reception' -> 'R'; 'Nursery' -> 'N'."""
    v = value.strip()
    low = v.lower()
    if low.startswith("rec") or low == "r":
        return "R"
    if low.startswith("nur") or low == "n":
        return "N"
    low = low.removeprefix("nc").strip()
    m = _YEAR.match(low)
    return m.group(1).upper() if m else v


def parse(text: str) -> list[MisRow]:
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, ",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if not header:
        raise RosterFileError("the file is empty: export the pupils from the MIS as CSV.")
    cols = detect(header)

    def cell(row: list[str], field: str) -> str:
        i = cols.get(field)
        return row[i].strip() if i is not None and i < len(row) else ""

    rows = []
    for n, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        role = cell(row, "role").lower()
        rows.append(MisRow(
            line=n, first=cell(row, "first"), last=cell(row, "last"),
            year=year_shown(cell(row, "year")), klass=cell(row, "klass"), upn=cell(row, "upn"),
            staff=role in _STAFF_WORDS or "staff" in role or "teacher" in role,
        ))  # fmt: skip
    return rows


def decode(data: bytes) -> str:
    """UTF-8 (with or without Excel's byte order mark), else Windows' legacy code page, which
    is what "CSV" from Excel on a school's Windows PC often is."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
