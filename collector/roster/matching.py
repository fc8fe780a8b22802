"""Which login account is each MIS row? MIS exports carry no login names, so either a naming
rule ("{first}.{last}", as most schools make accounts) or the directory's own export (AD or
Entra: sAMAccountName or userPrincipalName, with givenName/sn or displayName, and employeeID
where the school stores the UPN there). Pure: rows in, accounts out."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field

from collector.roster.mis_csv import MisRow, RosterFileError, fold

_PLACEHOLDER = re.compile(r"\{(\w+)(?:\[(\d+)\])?\}")
_FIELDS = {"first", "last", "upn", "year", "class"}


def simple(text: str) -> str:
    """Lower case, accents off, no spaces, apostrophes or hyphens: "O'Brien-Smith" ->
    "obriensmith", "Zoë" -> "zoe"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def check_rule(rule: str) -> None:
    names = _PLACEHOLDER.findall(rule)
    bad = [n for n, _ in names if n not in _FIELDS]
    if not names or bad:
        raise RosterFileError(
            f"the naming rule {rule!r} is not one we can use: write it with "
            '{first}, {last}, {first[1]} (first letter), {upn}, e.g. "{first}.{last}" or '
            '"pupil.{first}".'
        )


def by_rule(row: MisRow, rule: str) -> str:
    values = {"first": simple(row.first), "last": simple(row.last), "upn": row.upn.lower(),
              "year": simple(row.year), "class": simple(row.klass)}  # fmt: skip

    def fill(m: re.Match[str]) -> str:
        v = values[m.group(1)]
        return v[: int(m.group(2))] if m.group(2) else v

    return _PLACEHOLDER.sub(fill, rule).lower()


@dataclass
class Directory:
    """Accounts from a directory export, indexed by name and by employee ID."""

    by_name: dict[str, list[str]] = field(default_factory=dict)
    by_id: dict[str, str] = field(default_factory=dict)

    def match(self, row: MisRow) -> tuple[str, list[str]]:
        """The account, or "" and the candidates when the name is shared or absent."""
        if row.upn and row.upn.lower() in self.by_id:
            return self.by_id[row.upn.lower()], []
        found = self.by_name.get(simple(row.first) + " " + simple(row.last), [])
        return (found[0], []) if len(found) == 1 else ("", found)


_ACCOUNT = ("samaccountname", "userprincipalname", "username", "login", "mailnickname")
_GIVEN, _SN = ("givenname", "firstname"), ("sn", "surname", "lastname")
_DISPLAY = ("displayname", "name")
_ID = ("employeeid", "employeenumber", "extensionattribute1")


def read_directory(text: str) -> Directory:
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise RosterFileError("the accounts file is empty: export users from AD or Entra as CSV.")
    head = [fold(h) for h in rows[0]]

    def col(names: tuple[str, ...]) -> int | None:
        return next((head.index(n) for n in names if n in head), None)

    acc, given, sn, display, ident = (col(_ACCOUNT), col(_GIVEN), col(_SN), col(_DISPLAY),
                                      col(_ID))  # fmt: skip
    if acc is None or (display is None and (given is None or sn is None)):
        raise RosterFileError(
            "the accounts file needs a sAMAccountName (or userPrincipalName) column and either "
            "givenName and sn or displayName (its header: " + ", ".join(rows[0])[:200] + ")."
        )
    d = Directory()
    for row in rows[1:]:

        def get(i: int | None, row: list[str] = row) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""

        account = get(acc).split("@", 1)[0].lower()  # a UPN's name part is the login name
        if not account:
            continue
        if given is not None and sn is not None and get(given):
            key = simple(get(given)) + " " + simple(get(sn))
        elif "," in get(display):  # "Jones, Cara", as some directories show names
            last, _, first = get(display).partition(",")
            key = simple(first.split()[0] if first.split() else "") + " " + simple(last)
        else:
            parts = get(display).split()
            key = (simple(parts[0]) + " " + simple("".join(parts[1:]))) if parts else ""
        if key.strip():
            d.by_name.setdefault(key, []).append(account)
        if get(ident):
            d.by_id[get(ident).lower()] = account
    return d
