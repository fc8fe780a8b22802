"""Incident records a tribunal can trust (issue 16, item 1): every change to an incident is a
chained entry, and an edit of the incident's rows straight in DuckDB is caught and named by the
page, by "Verify evidence" and by the record check."""

from __future__ import annotations

import re

import pytest

from collector.integrity import audit, records
from tests.integration.console.support import Agent, Client, ConsoleHarness, keyword

pytestmark = pytest.mark.integration


def worked_incident(console: ConsoleHarness) -> int:
    """A grooming candidate triaged as a DSL would: in review, a note, a follow-up done, a
    referral asked for by the DSL and confirmed by the deputy."""
    agent = Agent.enrol(console)
    agent.ship(keyword("grooming", ["our secret"], account="pupil.cara",
                       context="keep this our secret ok"))  # fmt: skip
    [row] = console.op("incidents")["rows"]
    iid = int(row["id"])
    dsl = Client(console.url)
    dsl.login("dsl")
    dsl.post(f"/incidents/{iid}/status", {"status": "in_review"})
    dsl.post(f"/incidents/{iid}/note", {"text": "Spoke to class teacher"})
    _, page = dsl.post(f"/incidents/{iid}/note", {"text": "Call parents", "due": "2030-01-01"})
    aid = re.search(r"/actions/(\d+)/done", page).group(1)  # type: ignore[union-attr]
    dsl.post(f"/incidents/{iid}/actions/{aid}/done")
    _, page = dsl.post(f"/incidents/{iid}/outcome", {"outcome": "referred_lado", "note": "LADO"})
    rid = re.search(r"/referrals/(\d+)/withdraw", page).group(1)  # type: ignore[union-attr]
    deputy = Client(console.url)
    deputy.login("deputy")
    deputy.post(f"/incidents/{iid}/referrals/{rid}/confirm")
    dsl.post(f"/incidents/{iid}/verify")
    return iid


def record_check(console: ConsoleHarness, iid: int | None = None) -> records.RecordCheck:
    key = audit.load_key(console.data)
    return console.with_store(lambda s: records.check(s.con, key, iid))


def test_an_untouched_record_matches_and_says_so(console: ConsoleHarness) -> None:
    iid = worked_incident(console)
    whole = record_check(console)
    assert whole.ok, whole.faults
    assert whole.entries >= 8 and whole.incidents == 1
    dsl = Client(console.url)
    dsl.login("dsl")
    page = dsl.get(f"/incidents/{iid}")[1]
    assert "Record as recorded" in page and "Evidence verified" in page


TAMPERING = {
    "the pupil": ("UPDATE incidents SET account = 'pupil.dan'", "account is 'pupil.dan'"),
    "the severity": ("UPDATE incidents SET severity = 1", "severity is 1"),
    "the outcome": ("UPDATE incidents SET outcome = 'no_concern'", "outcome is 'no_concern'"),
    "closed_by": ("UPDATE incidents SET closed_by = 'head'", "closed_by is 'head'"),
    "a note": ("UPDATE incident_actions SET text = 'nothing to see' WHERE kind = 'note'",
               "text is 'nothing to see'"),
    "confirmed_by": ("UPDATE referrals SET confirmed_by = 'dsl'", "confirmed_by is 'dsl'"),
    "a deleted note": ("DELETE FROM incident_actions WHERE kind = 'note'", "was deleted"),
    "a follow-up reopened": ("UPDATE incident_actions SET done_ms = NULL WHERE kind = "
                             "'follow_up'", "is open but the record says done"),
    "a record entry": ("UPDATE incident_log SET actor = 'head' WHERE kind = "
                       "'referral_confirmed'", "was changed"),
    "a record entry's fields": ("UPDATE incident_log SET fields = replace(fields, 'deputy', "
                                "'dsl') WHERE kind = 'referral_confirmed'",
                                "its fields were changed"),
}  # fmt: skip


@pytest.mark.parametrize("what", list(TAMPERING))
def test_an_edit_in_the_database_is_caught_and_named(console: ConsoleHarness, what: str) -> None:
    iid = worked_incident(console)
    sql, named = TAMPERING[what]
    console.with_store(lambda s: s.con.execute(sql))
    check = record_check(console, iid)
    assert not check.ok and any(named in f for f in check.faults), check.faults
    dsl = Client(console.url)
    dsl.login("dsl")
    page = dsl.get(f"/incidents/{iid}")[1]
    assert "Record check FAILED" in page and named.replace("'", "&#39;") in page
    page = dsl.post(f"/incidents/{iid}/verify")[1]
    assert "Evidence check FAILED" in page or "Record check FAILED" in page


def test_a_rerun_and_a_purge_supersede_entries_and_keep_the_chain(
    console: ConsoleHarness,
) -> None:
    iid = worked_incident(console)
    agent = Agent.enrol(console)
    agent.ship(keyword("bullying", ["loser"], account="pupil.amy"))
    console.op("incidents_rerun")
    assert record_check(console).ok, record_check(console).faults
    console.with_store(lambda s: s.con.execute(
        "UPDATE incidents SET closed_ms = 0 WHERE id = ?", [iid]))  # fmt: skip
    console.op("retention", purge=True)
    check = record_check(console)
    assert check.ok, check.faults
    gone = console.with_store(lambda s: s.con.execute(
        "SELECT count(*) FROM incident_log WHERE incident_id = ? AND fields IS NOT NULL "
        "AND kind <> 'purged'",
        [iid]).fetchone()[0])  # fmt: skip
    assert gone == 0  # retention reaches the record's fields too
