"""The roster over real HTTP (issue 17): imported, pupils are named with year and class beside
their login name on the incident list, the incident, the chronology and the CPOMS export; a
re-import from the console moves a class and marks a leaver; governors and technicians see no
names; imports and views are audited."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid

import pytest

from collector.integrity import audit
from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration
MIS = "Forename,Surname,Year,Reg Group\nAmy,Lee,Year 6,6C\nBen,Okafor,Year 4,4A\n"


def upload(c: Client, files: dict[str, str], fields: dict[str, str]) -> tuple[int, str]:
    """POST /roster as the browser's multipart form does."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             for k, v in {**fields, "csrf": c.csrf}.items()]  # fmt: skip
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{k}.csv"'
              f"\r\nContent-Type: text/csv\r\n\r\n{v}\r\n" for k, v in files.items()]  # fmt: skip
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    req = urllib.request.Request(  # noqa: S310 -- our own console
        c.base + "/roster", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    return c._open(req)


def test_names_year_and_class_beside_the_account_and_a_reimport(console: ConsoleHarness) -> None:
    agent = Agent.enrol(console)
    agent.ship(keyword("grooming", ["our secret"]), keyword("bullying", ["loser"],
                                                          account="pupil.ben"))  # fmt: skip
    got = console.op("roster_import", text=MIS, naming="pupil.{first}", by="tech1")
    assert (got["added"], got["unmatched"]) == (2, [])
    dsl = Client(console.url)
    dsl.login("dsl")
    _, listing = dsl.get("/incidents")
    assert "Amy Lee (Y6, 6C) pupil.amy" in listing and "Ben Okafor (Y4, 4A) pupil.ben" in listing
    amy = re.search(r'href="/incidents/(\d+)"[^<]*<strong>grooming', listing)
    assert amy, listing
    _, page = dsl.get(f"/incidents/{amy.group(1)}")
    assert "Amy Lee (Y6, 6C) pupil.amy" in page
    _, page = dsl.get("/pupils/pupil.amy/chronology")
    assert "Chronology: Amy Lee (Y6, 6C) pupil.amy" in page
    _, text = dsl.get("/pupils/pupil.amy/chronology.csv")
    assert text.startswith('"Chronology of pupil Amy Lee (Y6, 6C) pupil.amy"')
    _, exported = dsl.get(f"/incidents/{amy.group(1)}/export.json")
    assert json.loads(exported)["student"] == "Amy Lee (Y6, 6C) pupil.amy"
    # From the console: Amy moves to 6D, Ben has left; a row that matches nobody is reported.
    status, page = dsl.get("/roster")
    assert status == 200 and "2 pupils" in page
    new = "Forename,Surname,Year,Reg Group\nAmy,Lee,Year 6,6D\nZed,Nobody,Year 3,3A\n"
    status, page = upload(dsl, {"file": new, "accounts": "sAMAccountName,givenName,sn\n"
                                "pupil.amy,Amy,Lee\n"}, {"naming": ""})  # fmt: skip
    assert status == 200 and "1 marked left, 1 unmatched" in page, page
    assert "Unmatched: line 3: Zed Nobody (no account with this name" in page
    _, listing = dsl.get("/incidents")
    assert "Amy Lee (Y6, 6D) pupil.amy" in listing
    assert "Ben Okafor (left, Y4, 4A) pupil.ben" in listing
    rows = console.with_store(lambda s: audit.read(s.con))
    imports = [r for r in rows if r["action"] == "roster_imported"]
    assert [r["actor"] for r in imports] == ["dsl", "cli:tech1"]  # newest first
    assert any(r["action"] == "view_roster" and r["actor"] == "dsl" for r in rows)


@pytest.mark.parametrize("who", ["gov", "tech"])
def test_governors_and_technicians_see_no_names(console: ConsoleHarness, who: str) -> None:
    Agent.enrol(console).ship(keyword("grooming", ["our secret"]))
    console.op("roster_import", text=MIS, naming="pupil.{first}")
    c = Client(console.url)
    c.login(who)
    status, _ = c.get("/roster")
    assert status == 403
    for path in ("/", "/reports/governors", "/agents"):
        _, page = c.get(path)
        assert "Amy" not in page and "Lee (" not in page
