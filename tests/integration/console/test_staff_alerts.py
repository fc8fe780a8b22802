"""Alerts about staff go to the head teacher (KCSIE Part 4, the LADO route), over real HTTP: a
deputy DSL (and a DSL, while the school has a head teacher account) does not see a candidate
about a member of staff in the list, a search, the dashboard, a chronology, an export, or by
its URL (404, audited); the head does; with no head teacher who can sign in, the DSL does."""

from __future__ import annotations

import re

import pytest

from collector.integrity import audit
from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration
MIS = "Forename,Surname,Year,Reg Group,Role\nAmy,Lee,Year 6,6C,\nSam,Teach,,,Teacher\n"
DIRECTORY = "sAMAccountName,givenName,sn\npupil.amy,Amy,Lee\nstaff.sam,Sam,Teach\n"


def _setup(console: ConsoleHarness) -> tuple[Agent, int, int]:
    """A pupil's candidate and a member of staff's on one PC: (agent, pupil's id, staff's id)."""
    console.op("roster_import", text=MIS, accounts=DIRECTORY)
    agent = Agent.enrol(console)
    agent.ship(keyword("grooming", ["our secret"], context="keep it our secret"),
               keyword("pornography", ["explicitword"], account="staff.sam",
                       context="staffterm explicitword"))  # fmt: skip
    console.settle()
    ids = dict(console.with_store(lambda s: s.con.execute(
        "SELECT account, id FROM incidents").fetchall()))  # fmt: skip
    return agent, ids["pupil.amy"], ids["staff.sam"]


def _linked(page: str) -> set[int]:
    return {int(x) for x in re.findall(r'href="/incidents/(\d+)', page)}


def _sees(c: Client, agent: Agent, pupil: int, staff: int) -> dict[str, bool]:
    """What this account sees of the staff candidate, route by route (and that it still sees
    the pupil's, so a blank page cannot pass)."""
    seen: dict[str, bool] = {}
    _, page = c.get("/incidents")
    assert pupil in _linked(page), page
    seen["list"] = staff in _linked(page)
    _, page = c.get("/incidents?status=&q=staffterm")
    seen["search"] = staff in _linked(page)
    _, page = c.get("/dashboard")
    assert pupil in _linked(page), page
    seen["dashboard"] = staff in _linked(page)
    _, page = c.get(f"/machines/{agent.sim.agent_id}/chronology")
    assert pupil in _linked(page), page
    seen["machine chronology"] = staff in _linked(page)
    status, _ = c.get("/pupils/staff.sam/chronology")
    seen["staff chronology"] = status == 200
    status, _ = c.get("/pupils/staff.sam/chronology.csv")
    seen["chronology export"] = status == 200
    status, _ = c.get(f"/incidents/{staff}")
    seen["by URL"] = status == 200
    status, _ = c.get(f"/incidents/{staff}/export.json")
    seen["export"] = status == 200
    status, _ = c.post(f"/incidents/{staff}/status", {"status": "in_review"})
    seen["action"] = status == 200
    return seen


def test_a_deputy_never_sees_an_alert_about_staff_and_the_head_does(
    console: ConsoleHarness,
) -> None:
    agent, pupil, staff = _setup(console)
    deputy = Client(console.url)
    deputy.login("deputy")
    assert _sees(deputy, agent, pupil, staff) == dict.fromkeys(_ROUTES, False)
    # Nor by ticking it for a bulk close.
    _, page = deputy.post("/incidents/close", [("id", str(staff)), ("outcome", "no_concern"),
                                               ("reason", "checked")])  # fmt: skip
    assert f"#{staff} not closed: no such incident." in page
    status = console.with_store(lambda s: s.con.execute(
        "SELECT status FROM incidents WHERE id = ?", [staff]).fetchone())  # fmt: skip
    assert status == ("new",)
    refused = [r for r in console.with_store(lambda s: audit.read(s.con))
               if r["action"] == "refused" and "staff_alert" in r["detail"]]  # fmt: skip
    assert {r["actor"] for r in refused} == {"deputy"}
    assert {f"incident:{staff}", "pupil:staff.sam"} <= {r["target"] for r in refused}
    # The DSL too, while the school has a head teacher who can sign in.
    dsl = Client(console.url)
    dsl.login("dsl")
    assert not any(_sees(dsl, agent, pupil, staff).values())
    head = Client(console.url)
    head.login("head")
    assert _sees(head, agent, pupil, staff) == dict.fromkeys(_ROUTES, True)
    # The head cannot give it to someone who does not see it.
    _, page = head.get(f"/incidents/{staff}")
    assert 'value="head"' in page and 'value="deputy"' not in page and 'value="dsl"' not in page
    _, page = head.post(f"/incidents/{staff}/assign", {"to": "deputy"})
    assert "Dev Deputy does not see alerts about staff" in page


def test_with_no_head_teacher_account_the_dsl_sees_alerts_about_staff(
    console: ConsoleHarness,
) -> None:
    agent, pupil, staff = _setup(console)
    console.op("user_disable", username="head")
    dsl = Client(console.url)
    dsl.login("dsl")
    assert all(_sees(dsl, agent, pupil, staff).values())
    deputy = Client(console.url)
    deputy.login("deputy")
    assert not any(_sees(deputy, agent, pupil, staff).values())


_ROUTES = ("list", "search", "dashboard", "machine chronology", "staff chronology",
           "chronology export", "by URL", "export", "action")  # fmt: skip
