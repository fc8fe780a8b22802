"""The DSL's decisions on a candidate. Every function runs on the single writer thread, in one
transaction with the audit row that records it.

new -> in_review -> closed, with an outcome. A referral outcome (police, LADO, Prevent/Channel,
IWF) is first *requested*; the candidate closes only when a second senior member of staff, not
the one who asked, confirms it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from collector import records
from collector.accounts import Account
from collector.audit import Audit
from collector.store import Store, now_ms

STATUSES = {"new": "New", "in_review": "In review", "closed": "Closed"}
OUTCOMES = {
    "no_concern": "No concern",
    "handled_in_school": "Handled in school",
    "recorded_cpoms": "Recorded in CPOMS",
    "referred_police": "Referred: police",
    "referred_lado": "Referred: LADO",
    "referred_prevent": "Referred: Prevent/Channel",
    "referred_iwf": "Referred: IWF",
}
REFERRALS = frozenset(k for k in OUTCOMES if k.startswith("referred_"))
MAX_TEXT = 4000


class TriageError(ValueError):
    """A refused action; the message is shown to the member of staff."""


def _status(store: Store, incident_id: int) -> str:
    row = store.con.execute("SELECT status FROM incidents WHERE id = ?", [incident_id]).fetchone()
    if row is None:
        raise TriageError(f"no incident {incident_id}")
    return str(row[0])


def _action(
    store: Store, incident_id: int, who: Account, kind: str, text: str, due: dt.date | None = None
) -> dict[str, Any]:
    """Add an action row; returns its fields for the incident's record entry."""
    action_id = store.one(
        "INSERT INTO incident_actions (incident_id, kind, text, due_date, by_user, at_ms) "
        "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        [incident_id, kind, text[:MAX_TEXT], due, who.username, now_ms()],
    )
    store.con.execute(
        "UPDATE incidents SET triaged = true, updated_ms = ? WHERE id = ?", [now_ms(), incident_id]
    )
    return records.action_fields(int(action_id), kind, text[:MAX_TEXT], due, who.username)


def _record(audit: Audit, store: Store, who: Account, incident_id: int, kind: str,
            fields: dict[str, Any]) -> None:  # fmt: skip
    """The incident's record entry for this step (collector/records.py)."""
    records.append(store, audit.key, [records.Entry(incident_id, kind, fields, who.username)])


def _need(who: Account, what: str) -> None:
    if not who.can(what):
        raise TriageError(f"a {who.role} account cannot do this")


def set_status(store: Store, audit: Audit, who: Account, incident_id: int, status: str) -> None:
    _need(who, "triage")
    if status not in ("new", "in_review"):
        raise TriageError("close an incident by recording its outcome")
    with store.transaction():
        old = _status(store, incident_id)
        store.con.execute(
            "UPDATE incidents SET status = ?, closed_ms = NULL, closed_by = '', outcome = '' "
            "WHERE id = ?",
            [status, incident_id],
        )
        change = f"{STATUSES[old]} -> {STATUSES[status]}"
        action = _action(store, incident_id, who, "status", change)
        _record(audit, store, who, incident_id, "status",
                {"status": status, "outcome": "", "closed_by": "", **action})  # fmt: skip
        audit.append(store, who.username, "status", f"incident:{incident_id}", f"{old}->{status}")


def record_outcome(
    store: Store, audit: Audit, who: Account, incident_id: int, outcome: str, note: str
) -> str:
    """Close with an outcome, or for a referral ask for the second confirmation. Returns what
    happened: "closed" or "awaiting confirmation"."""
    _need(who, "triage")
    if outcome not in OUTCOMES:
        raise TriageError("choose an outcome")
    with store.transaction():
        if _status(store, incident_id) == "closed":
            raise TriageError("this incident is closed; reopen it first")
        pending = store.con.execute(
            "SELECT 1 FROM referrals WHERE incident_id = ? AND state = 'pending'", [incident_id]
        ).fetchone()
        if pending:  # closing another way would leave it to overwrite the outcome later
            raise TriageError("a referral is waiting for confirmation: a second senior member "
                              "of staff confirms it, or it is withdrawn, first")  # fmt: skip
        if outcome in REFERRALS:
            referral_id = store.one(
                "INSERT INTO referrals (incident_id, outcome, note, requested_by, requested_ms) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                [incident_id, outcome, note[:MAX_TEXT], who.username, now_ms()],
            )
            store.con.execute(
                "UPDATE incidents SET status = 'in_review' WHERE id = ?", [incident_id]
            )
            action = _action(
                store,
                incident_id,
                who,
                "referral",
                f"{OUTCOMES[outcome]} requested; needs a second senior member of staff. " + note,
            )
            referral = {"id": int(referral_id), "outcome": outcome, "note": note[:MAX_TEXT],
                        "requested_by": who.username, "state": "pending"}  # fmt: skip
            _record(audit, store, who, incident_id, "referral_requested",
                    {"status": "in_review", "referral": referral, **action})  # fmt: skip
            audit.append(
                store, who.username, "referral_requested", f"incident:{incident_id}", outcome
            )
            return "awaiting confirmation"
        _record(audit, store, who, incident_id, "closed",
                _close(store, incident_id, outcome, note, who))  # fmt: skip
        audit.append(store, who.username, "closed", f"incident:{incident_id}", outcome)
        return "closed"


def _close(
    store: Store, incident_id: int, outcome: str, note: str, who: Account
) -> dict[str, Any]:
    store.con.execute(
        "UPDATE incidents SET status = 'closed', outcome = ?, outcome_note = ?, closed_by = ?, "
        "closed_ms = ? WHERE id = ?",
        [outcome, note[:MAX_TEXT], who.username, now_ms(), incident_id],
    )
    action = _action(store, incident_id, who, "outcome",
                     f"Closed: {OUTCOMES[outcome]}. {note}".strip())  # fmt: skip
    return {"status": "closed", "outcome": outcome, "outcome_note": note[:MAX_TEXT],
            "closed_by": who.username, **action}  # fmt: skip


def confirm_referral(store: Store, audit: Audit, who: Account, referral_id: int) -> int:
    """The second senior member of staff confirms; the incident closes. Returns its id."""
    _need(who, "confirm_referral")
    with store.transaction():
        row = store.con.execute(
            "SELECT incident_id, outcome, note, requested_by FROM referrals "
            "WHERE id = ? AND state = 'pending'",
            [referral_id],
        ).fetchone()
        if row is None:
            raise TriageError("no referral waiting for confirmation")
        incident_id, outcome, note, requested_by = row
        if requested_by == who.username:
            raise TriageError(
                "a referral needs a second member of staff: someone else must confirm it"
            )
        store.con.execute(
            "UPDATE referrals SET state = 'confirmed', confirmed_by = ?, confirmed_ms = ? "
            "WHERE id = ?",
            [who.username, now_ms(), referral_id],
        )
        closed = _close(store, incident_id, outcome, note, who)
        referral = {"id": referral_id, "state": "confirmed", "confirmed_by": who.username}
        _record(audit, store, who, incident_id, "referral_confirmed",
                {**closed, "referral": referral})  # fmt: skip
        audit.append(
            store,
            who.username,
            "referral_confirmed",
            f"incident:{incident_id}",
            f"{outcome} requested_by={requested_by}",
        )
        return int(incident_id)


def withdraw_referral(store: Store, audit: Audit, who: Account, referral_id: int) -> int:
    _need(who, "triage")
    with store.transaction():
        row = store.con.execute(
            "UPDATE referrals SET state = 'withdrawn', confirmed_by = ?, confirmed_ms = ? "
            "WHERE id = ? AND state = 'pending' RETURNING incident_id",
            [who.username, now_ms(), referral_id],
        ).fetchone()
        if row is None:
            raise TriageError("no referral waiting for confirmation")
        action = _action(store, row[0], who, "referral", "Referral request withdrawn")
        referral = {"id": referral_id, "state": "withdrawn", "confirmed_by": who.username}
        _record(audit, store, who, int(row[0]), "referral_withdrawn",
                {"referral": referral, **action})  # fmt: skip
        audit.append(store, who.username, "referral_withdrawn", f"incident:{row[0]}")
        return int(row[0])


def add_note(
    store: Store,
    audit: Audit,
    who: Account,
    incident_id: int,
    text: str,
    due: dt.date | None = None,
) -> None:
    """A note, or with a due date a follow-up action."""
    _need(who, "triage")
    if not text.strip():
        raise TriageError("write the note or action first")
    kind = "follow_up" if due else "note"
    with store.transaction():
        _status(store, incident_id)
        _record(audit, store, who, incident_id, kind,
                _action(store, incident_id, who, kind, text.strip(), due))  # fmt: skip
        audit.append(
            store, who.username, kind, f"incident:{incident_id}", due.isoformat() if due else ""
        )


def complete_action(store: Store, audit: Audit, who: Account, action_id: int) -> int:
    _need(who, "triage")
    with store.transaction():
        row = store.con.execute(
            "UPDATE incident_actions SET done_ms = ? WHERE id = ? AND kind = 'follow_up' "
            "AND done_ms IS NULL RETURNING incident_id",
            [now_ms(), action_id],
        ).fetchone()
        if row is None:
            raise TriageError("no open follow-up action with that number")
        _record(audit, store, who, int(row[0]), "follow_up_done", {"done": action_id})
        audit.append(store, who.username, "follow_up_done", f"incident:{row[0]}", str(action_id))
        return int(row[0])
