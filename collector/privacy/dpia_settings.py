"""The settings a DPIA pack is written from, gathered from the live collector into one summary.

Sources, all read at the moment the pack is made:
- the policy agents enforce: DIR/policy/current.json, verified with the policy key as an agent
  would (collector/policy.py), so the pack describes exactly what PCs run;
- retention periods: the settings table (collector/storage/retention.py);
- notifications: DATA/console.toml [notify] (collector/console/config.py);
- roles: collector/accounts.py ROLES and CAN;
- where data lives: the data folder; the school's name: its CA certificate.

The summary is plain JSON-ready data: the pack's texts are made from it alone, its SHA-256 is
the pack's fingerprint, and the last pack's summary (kept in the data folder) is what the next
pack is compared with (collector/privacy/dpia_changes.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from collector import accounts, policy
from collector.paths import DataDir
from collector.privacy import dpia_screenshots
from collector.reporting.notify import NotifyConfig
from collector.storage.retention import Periods
from rules import bundle
from rules.schema import Policy, PolicyError

# What a PC keeps (agent/outbox.py defaults; the collector never imports the agent, so a test
# holds these to the agent's own constants).
PC_KEEP_ACKED_DAYS = 7
PC_KEEP_ACKED_EVENTS = 20_000
PC_OUTBOX_MAX_EVENTS = 50_000

# What each console permission lets a role see or do, in words for the DPIA.
PERMISSIONS = {
    "incidents": "read incidents and their evidence (names, the words around a match, sites)",
    "triage": "record what was done: status, outcome, notes, follow-up actions",
    "confirm_referral": "confirm a referral as the second senior member of staff",
    "approve_exemption": "approve research exemptions",
    "request_exemption": "request research exemptions",
    "audit": "read the audit log of who saw and did what",
    "weekly_report": "read the weekly report (with names)",
    "governors": "read the governors' summary (counts and trends, no names)",
    "agents": "see the PCs' health, rooms and enrolment (no incident content)",
    "settings": "set retention periods",
    "manage_accounts": "add, reset and disable console accounts",
    "dpia": "read and issue this DPIA pack",
}


class DpiaError(Exception):
    """The pack cannot be written; the message says why and what to do."""


def live_policy(data: DataDir) -> tuple[int, Policy]:
    """The published policy, verified with the collector's policy key as agents verify it."""
    found = policy.current(data)
    if found is None:
        raise DpiaError(f"no policy is published in {data.policy_dir}; publish one first "
                        f"(safeguard-collector policy publish --data {data.root})")  # fmt: skip
    key = Ed25519PublicKey.from_public_bytes(data.policy_pub.read_bytes())
    try:
        checked = bundle.verify_bundle(found[1], key)
    except PolicyError as exc:
        raise DpiaError(f"the published policy does not verify ({exc}); publish it again "
                        f"(safeguard-collector policy publish --data {data.root})") from None
    return checked.version, checked.policy


def school_name(data: DataDir) -> str:
    """The name `init --school` put on the school's CA certificate."""
    try:
        cert = x509.load_pem_x509_certificate(data.ca_cert.read_bytes())
    except (OSError, ValueError):
        return "the school"
    names = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) and value else "the school"


# What `safeguard-collector roster import` keeps of each pupil (collector/roster/book.py).
ROSTER_FIELDS = ["first name", "surname", "year group", "class", "UPN if the export has it",
                 "whether staff", "when they left"]  # fmt: skip


def summary(
    policy_version: int,
    pol: Policy,
    periods: Periods,
    notify: NotifyConfig,
    data_root: Path,
    school: str,
) -> dict[str, Any]:
    """Everything the pack says, as data. Pure: the same settings give the same summary."""
    return {
        "school": school,
        "policy_version": policy_version,
        "logon_notice": pol.notice,
        "context_words": pol.context_words,
        "context_chars": pol.context_chars,
        "categories": {c.name: {"title": c.title, "on": c.enabled} for c in pol.categories},
        "profiles": {
            p.name: {
                "title": p.title,
                "sensors": sorted(p.sensors),
                "categories": sorted(p.categories),
                "url_categories": sorted(p.url_categories),
                "full_browsing_log": p.full_browsing_log,
                "semantic": p.semantic,
            }
            for p in pol.profiles
        },
        "default_profile": pol.default_profile,
        "assignments": [
            f"{'account' if a.account else 'group'} {a.account or a.group} -> {a.profile}"
            for a in pol.assignments
        ],
        "usb_rules": [
            {"action": r.action, "name": r.name, "why": r.why, "accounts": list(r.accounts)}
            for r in pol.usb
        ],
        # The model is named by the policy; None when the policy has no semantic stage or it
        # is switched off.
        "semantic_model": pol.semantic.model if pol.semantic and pol.semantic.enabled else None,
        "exemptions": [
            {"id": e.id, "group": e.group, "end": e.end.date().isoformat(), "reason": e.reason,
             "approver": e.approver}
            for e in pol.exemptions
        ],
        "retention_events_days": periods.events_days,
        "retention_incidents_days": periods.incidents_days,
        "screenshots": dpia_screenshots.settings(pol.screenshots),  # False: none taken
        "roster": None,  # set by dpia.gather when a pupil roster is imported
        "pc_keep_acked_days": PC_KEEP_ACKED_DAYS,
        "pc_keep_acked_events": PC_KEEP_ACKED_EVENTS,
        "pc_outbox_max_events": PC_OUTBOX_MAX_EVENTS,
        "notify_email": bool(notify.smtp_host and (notify.email_to or notify.head_email_to)),
        "notify_webhook": bool(notify.webhook_url),
        "notify_min_severity": notify.min_severity,
        "roles": {
            role: {"title": title,
                   "can": [k for k, who in accounts.CAN.items() if role in who]}
            for role, title in accounts.ROLES.items()
        },
        "data_folder": str(data_root),
    }


def fingerprint(settings: dict[str, Any]) -> str:
    """SHA-256 of the summary's canonical JSON: the same settings always give the same one."""
    raw = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()
