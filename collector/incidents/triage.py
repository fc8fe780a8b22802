"""The DSL's decisions on a candidate. Every function runs on the single writer thread, in one
transaction with the audit row that records it.

new -> in_review -> closed, with an outcome. A referral outcome (police, LADO, Prevent/Channel,
IWF) is recorded as made at once, and the candidate closes with it: a referral is never held
back waiting for anyone. A second senior member of staff then confirms it. Two people means two
people: not the one who made it, nor an account made after it, nor one the maker created
(collector/accounts.py keeps who created each account). A school with one DSL confirms with the
head.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from collector import accounts
from collector.accounts import Account
from collector.incidents import staff_alerts
from collector.integrity import records
from collector.integrity.audit import Audit
from collector.storage.store import Store, now_ms

STATUSES = {"new": "New", "in_review": "In review", "closed": "Closed"}
OUTCOMES = {
    "no_concern": "No concern",
    "handled_in_school": "Handled in school",
    "recorded_cpoms": "Recorded in CPOMS",
    "referred_mash": "Referred: children's social care (MASH)",
    "referred_early_help": "Referred: early help",
    "referred_police": "Referred: police",
    "referred_lado": "Referred: LADO",
    "referred_prevent": "Referred: Prevent/Channel",
    "referred_iwf": "Referred: IWF",
    # Not a DSL's choice: a candidate that mixed several concerns, made before candidates held
    # one each, is closed with this when one candidate per concern takes its events.
    "superseded": "Superseded: split into one candidate per concern",
}
CHOSEN = {k: v for k, v in OUTCOMES.items() if k != "superseded"}  # what a DSL may record
REFERRALS = frozenset(k for k in OUTCOMES if k.startswith("referred_"))
# What may close many candidates at once (the list's bulk form): never a referral (each is its
# own decision, confirmed by a second person) nor a CPOMS record (its reference is per incident).
BULK = {k: OUTCOMES[k] for k in ("no_concern", "handled_in_school")}
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
    """The incident's record entry for this step (collector/integrity/records.py)."""
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
            "UPDATE incidents SET status = ?, closed_ms = NULL, closed_by = '', outcome = '', "
            "cpoms_ref = '' WHERE id = ?",
            [status, incident_id],
        )
        change = f"{STATUSES[old]} -> {STATUSES[status]}"
        action = _action(store, incident_id, who, "status", change)
        _record(audit, store, who, incident_id, "status",
                {"status": status, "outcome": "", "closed_by": "", "cpoms_ref": "",
                 **action})  # fmt: skip
        audit.append(store, who.username, "status", f"incident:{incident_id}", f"{old}->{status}")


def record_outcome(
    store: Store, audit: Audit, who: Account, incident_id: int, outcome: str, note: str,
    cpoms_ref: str = "", open_reason: str = "",
) -> str:  # fmt: skip
    """Close with an outcome; a referral is recorded as made and waits for a second senior
    member of staff to confirm it. `cpoms_ref`: the CPOMS record's reference, for "recorded in
    CPOMS". An incident with open follow-ups closes only when `open_reason` says why; a
    referral is recorded as made all the same (never held back) and the incident stays open
    until they are done. Returns "closed", "awaiting confirmation" or "referral made, open"."""
    _need(who, "triage")
    if outcome not in CHOSEN:
        raise TriageError("choose an outcome")
    ref = _reference(cpoms_ref) if outcome == "recorded_cpoms" else ""
    reason = " ".join(open_reason.split())[:MAX_TEXT]
    with store.transaction():
        if _status(store, incident_id) == "closed":
            raise TriageError("this incident is closed; reopen it first")
        still_open = _open_follow_ups(store, incident_id)
        closes = not still_open or bool(reason)
        if not closes and outcome not in REFERRALS:
            raise TriageError(
                f"{len(still_open)} follow-up action(s) are still open ("
                + "; ".join(still_open)[:200]
                + "): mark them done, or say why you close the incident with them open"
            )
        made_before = outcome in REFERRALS and store.con.execute(
            "SELECT 1 FROM referrals WHERE incident_id = ? AND outcome = ? "
            "AND state IN ('pending', 'confirmed')", [incident_id, outcome]).fetchone()  # fmt: skip
        if made_before:  # made while follow-ups were open; now the incident closes with it
            if not closes:
                return "referral made, open"
            closed = _close(store, incident_id, outcome, note, who, ref, still_open, reason)
            _record(audit, store, who, incident_id, "closed", closed)
            audit.append(store, who.username, "closed", f"incident:{incident_id}", outcome)
            return "closed"
        if outcome in REFERRALS:
            referral_id = store.one(
                "INSERT INTO referrals (incident_id, outcome, note, requested_by, requested_ms) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                [incident_id, outcome, note[:MAX_TEXT], who.username, now_ms()],
            )
            made = _action(
                store,
                incident_id,
                who,
                "referral",
                f"{OUTCOMES[outcome]} made; a second senior member of staff confirms it. " + note,
            )
            referral = {"id": int(referral_id), "outcome": outcome, "note": note[:MAX_TEXT],
                        "requested_by": who.username, "state": "pending"}  # fmt: skip
            _record(audit, store, who, incident_id, "referral_requested",
                    {"referral": referral, **made})  # fmt: skip
            audit.append(
                store, who.username, "referral_made", f"incident:{incident_id}", outcome
            )
            if not closes:
                return "referral made, open"
            closed = _close(store, incident_id, outcome, note, who, ref, still_open, reason)
            _record(audit, store, who, incident_id, "closed", closed)
            return "awaiting confirmation"
        closed = _close(store, incident_id, outcome, note, who, ref, still_open, reason)
        _record(audit, store, who, incident_id, "closed", closed)
        audit.append(store, who.username, "closed", f"incident:{incident_id}", outcome)
        return "closed"


def _reference(text: str) -> str:
    """A CPOMS reference as typed: printable, one line, at most 40 characters."""
    ref = " ".join("".join(ch for ch in text if ch.isprintable()).split())
    if len(ref) > 40:
        raise TriageError("a CPOMS reference is at most 40 characters")
    return ref


def _open_follow_ups(store: Store, incident_id: int) -> list[str]:
    rows = store.con.execute(
        "SELECT text FROM incident_actions WHERE incident_id = ? AND kind = 'follow_up' "
        "AND done_ms IS NULL ORDER BY id",
        [incident_id],
    ).fetchall()
    return [str(r[0]) for r in rows]


def _close(
    store: Store, incident_id: int, outcome: str, note: str, who: Account, cpoms_ref: str = "",
    still_open: list[str] | None = None, reason: str = "",
) -> dict[str, Any]:  # fmt: skip
    store.con.execute(
        "UPDATE incidents SET status = 'closed', outcome = ?, outcome_note = ?, closed_by = ?, "
        "closed_ms = ?, cpoms_ref = ? WHERE id = ?",
        [outcome, note[:MAX_TEXT], who.username, now_ms(), cpoms_ref, incident_id],
    )
    text = f"Closed: {OUTCOMES[outcome]}. {note}".strip()
    if cpoms_ref:
        text += f" CPOMS reference {cpoms_ref}."
    if still_open:
        text += f" Closed with {len(still_open)} follow-up(s) open, because: {reason}"
    action = _action(store, incident_id, who, "outcome", text)
    fields = {"status": "closed", "outcome": outcome, "outcome_note": note[:MAX_TEXT],
              "closed_by": who.username, "cpoms_ref": cpoms_ref, **action}  # fmt: skip
    if still_open:
        fields["closed_with_open_follow_ups"] = {"count": len(still_open), "reason": reason}
    return fields


def confirm_referral(store: Store, audit: Audit, who: Account, referral_id: int) -> int:
    """The second senior member of staff confirms a referral already made. Returns the
    incident's id."""
    _need(who, "confirm_referral")
    with store.transaction():
        row = store.con.execute(
            "SELECT incident_id, outcome, requested_by, requested_ms FROM referrals "
            "WHERE id = ? AND state = 'pending'",
            [referral_id],
        ).fetchone()
        if row is None:
            raise TriageError("no referral waiting for confirmation")
        incident_id, outcome, requested_by, requested_ms = row
        _second_person(store, who, requested_by, int(requested_ms))
        store.con.execute(
            "UPDATE referrals SET state = 'confirmed', confirmed_by = ?, confirmed_ms = ? "
            "WHERE id = ?",
            [who.username, now_ms(), referral_id],
        )
        text = f"{OUTCOMES[outcome]} confirmed by a second senior member of staff"
        action = _action(store, incident_id, who, "referral", text)
        referral = {"id": referral_id, "state": "confirmed", "confirmed_by": who.username}
        _record(audit, store, who, incident_id, "referral_confirmed",
                {**action, "referral": referral})  # fmt: skip
        audit.append(
            store,
            who.username,
            "referral_confirmed",
            f"incident:{incident_id}",
            f"{outcome} requested_by={requested_by}",
        )
        return int(incident_id)


def _second_person(store: Store, who: Account, requested_by: str, requested_ms: int) -> None:
    """Refuse a confirmation that is not a second, independent person."""
    if requested_by == who.username:
        raise TriageError(
            "a referral needs a second member of staff: someone else must confirm it"
        )
    row = store.con.execute(
        "SELECT created_ms, coalesce(created_by, ''), coalesce(approved_ms, 0) FROM accounts "
        "WHERE username = ?",
        [who.username],
    ).fetchone()
    if row is None:
        raise TriageError("your account is not known")
    created_ms, created_by, approved_ms = int(row[0]), str(row[1]), int(row[2])
    if approved_ms >= requested_ms:
        raise TriageError(
            "an account given its senior role after the referral cannot confirm it: the "
            "second person must be one already on the team"
        )
    if created_ms >= requested_ms:
        raise TriageError("an account made after the referral cannot confirm it: the second "
                          "person must be one who was already on the team")  # fmt: skip
    if created_by == requested_by:
        raise TriageError(f"{requested_by} made this account, so it cannot confirm "
                          f"{requested_by}'s referral: ask another senior member of staff (a "
                          "school with one DSL confirms with the head)")  # fmt: skip


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
        # Recorded as made in error: the incident opens again for its real outcome.
        store.con.execute(
            "UPDATE incidents SET status = 'in_review', outcome = '', closed_by = '', "
            "closed_ms = NULL WHERE id = ?",
            [row[0]],
        )
        action = _action(store, row[0], who, "referral", "Referral withdrawn (recorded in "
                         "error); the incident is open again")  # fmt: skip
        referral = {"id": referral_id, "state": "withdrawn", "confirmed_by": who.username}
        _record(audit, store, who, int(row[0]), "referral_withdrawn",
                {"referral": referral, "status": "in_review", "outcome": "", "closed_by": "",
                 **action})  # fmt: skip
        audit.append(store, who.username, "referral_withdrawn", f"incident:{row[0]}")
        return int(row[0])


def assign(store: Store, audit: Audit, who: Account, incident_id: int, username: str) -> str:
    """Give the candidate to a member of the safeguarding team ('' for no one). Returns the
    display name it now has ('' for no one)."""
    _need(who, "triage")
    name = ""
    with store.transaction():
        old = _assigned(store, incident_id)
        if username:
            to = accounts.get(store.con, username)
            if to is None or not to.can("triage"):
                raise TriageError(f"{username} is not an account on the safeguarding team")
            if staff_alerts.hidden_from(store.con, to.role, incident_id):
                raise TriageError(f"{to.display_name} does not see alerts about staff (they go "
                                  "to the head teacher), so cannot be given this one")
            name = to.display_name
        if username == old:
            return name
        store.con.execute(
            "UPDATE incidents SET assigned_to = ?, updated_ms = ? WHERE id = ?",
            [username, now_ms(), incident_id],
        )
        _record(audit, store, who, incident_id, "assigned", {"assigned_to": username})
        audit.append(store, who.username, "assigned", f"incident:{incident_id}",
                     f"{old or 'no one'} -> {username or 'no one'}")  # fmt: skip
        return name


def _assigned(store: Store, incident_id: int) -> str:
    row = store.con.execute(
        "SELECT coalesce(assigned_to, '') FROM incidents WHERE id = ?", [incident_id]
    ).fetchone()
    if row is None:
        raise TriageError(f"no incident {incident_id}")
    return str(row[0])


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
