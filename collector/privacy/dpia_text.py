"""The school's DPIA draft, written from a settings summary (collector/privacy/dpia_settings.py).

A draft for the school's data protection officer to complete: the facts come from the live
settings; the judgements (lawful basis, the residual risk, sign-off) are left for the school,
with the usual answers for a UK school given as suggestions.
"""

from __future__ import annotations

from typing import Any

from collector.privacy import dpia_facts as f
from collector.privacy import dpia_screenshots
from collector.privacy.dpia_doc import Block, Bullets, Doc, Heading, Para, Table
from collector.privacy.dpia_settings import PERMISSIONS


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _about(s: dict[str, Any], fp: str, made: str, changed: list[str] | None,
           readability: str) -> list[Block]:  # fmt: skip
    out: list[Block] = [
        Para(f"A draft Data Protection Impact Assessment for the safeguarding monitor at "
             f"{s['school']}, written on {made} from the collector's live settings. The facts "
             "below are what the system is set to do; the school's data protection officer "
             "completes the judgements and signs it off."),
        Para(f"Settings fingerprint: `{fp}` (policy version {s['policy_version']}). A pack "
             "with the same fingerprint was written from the same settings."),
        Para(f"The pupils' notice, {readability}."),
        Heading("What changed since the last pack", 3),
    ]
    if changed is None:
        out.append(Para("This is the first pack written from this collector."))
    elif not changed:
        out.append(Para("Nothing: the settings are the same as the last pack's."))
    else:
        out.append(Bullets(tuple(changed)))
    return out


def _purpose(s: dict[str, Any]) -> list[Block]:
    return [
        Heading("1. Why the school processes this data"),
        Para("To meet the school's safeguarding duties: Keeping Children Safe in Education "
             "asks for appropriate filtering and monitoring, and the Prevent duty asks schools "
             "to protect pupils from radicalisation. The monitor finds signs that a child may "
             "be at risk (what they type or search for, the sites they visit, USB devices) and "
             "shows them to the Designated Safeguarding Lead, who decides what to do. Nothing "
             "is decided about a child by the system alone."),
        Para("Suggested lawful basis, for the DPO to confirm: UK GDPR Article 6(1)(e) (public "
             "task) or 6(1)(c) (legal obligation); for special category data, Article 9(2)(g) "
             "with the Data Protection Act 2018, Schedule 1, paragraph 18 (safeguarding of "
             "children and individuals at risk)."),
    ]


def _captured(s: dict[str, Any]) -> list[Block]:
    rows = []
    for name, p in s["profiles"].items():
        cats = f.keyword_on(s, p)
        rows.append((
            f"{p['title']} (`{name}`)", ", ".join(p["sensors"]) or "none",
            ", ".join(cats) if cats and {"keyboard", "browser"} & set(p["sensors"]) else "none",
            ", ".join(p["url_categories"]) if "browser" in p["sensors"] else "none",
            _yes(p["full_browsing_log"] and "browser" in p["sensors"]),
            _yes(p["semantic"] and s["semantic_model"] is not None),
        ))  # fmt: skip
    browsing = [p["title"] for p in s["profiles"].values()
                if p["full_browsing_log"] and "browser" in p["sensors"]]  # fmt: skip
    model = s["semantic_model"]
    return [
        Heading("2. What is captured, and what is not"),
        Para("What each group of computer users is monitored for (the policy's profiles; an "
             f"account no rule sorts gets the `{s['default_profile']}` profile):"),
        Table(("profile", "sensors", "keyword categories (typing, searches)",
               "website lists", "full browsing log", "semantic stage"), tuple(rows)),
        Bullets((
            "Typing: detections, not keystrokes. Keystrokes stay in the PC's memory and are "
            "never written to disk or sent. A detection carries the matched words, their list "
            f"and category, and at most {s['context_words']} words ({s['context_chars']} "
            "characters) around them, with the program and window title, the account and the "
            "computer.",
            "Browsing: a web address is sent only when it matches a website list (with the few "
            "addresses visited just before it), and a search only when its words match a "
            "keyword list. " + (f"A full browsing log is ON for: {', '.join(browsing)}."
                                if browsing else "A full browsing log is off for every group."),
            "USB: each device plugged in or removed, with its maker, model and serial number, "
            "and whether it was allowed. USB storage is blocked unless a rule allows it "
            "(section 4).",
            dpia_screenshots.technical(s),
            ("Pupil roster: none. No list of pupils is imported; people are known by their "
             "computer account names only." if not s.get("roster") else
             "Pupil roster: imported from the school's MIS (" + ", ".join(s["roster"]) + "), "
             "matched to computer accounts, so the DSL, deputy and head teacher see a pupil's "
             "name, year and class beside the account. Governors and the technician never see "
             "it. A pupil who leaves is marked so at the next import and removed with the "
             "events' retention period." + (
                 " Profiles follow the year group: every PC receives each current pupil's and "
                 "staff member's computer account name with its profile (KS1, KS2 or staff) "
                 "in the policy, and nothing else of the roster (no name, year group, class or "
                 "UPN); with this off, PCs receive no account names."
                 if s.get("roster_profiles") else "")),
            ("Semantic stage: off." if model is None else
             f"Semantic stage: on, using the sentence model `{model}` named by the policy. It "
             "runs on the PC; sentences are compared there and only an alert is sent."),
            "PC health: heartbeats (agent version, policy version, sensors running) so the "
            "technician sees every PC that should report.",
        )),
    ]


def _categories(s: dict[str, Any]) -> list[Block]:
    rows = tuple((c["title"], f"`{n}`", "on" if c["on"] else "off")
                 for n, c in s["categories"].items())  # fmt: skip
    ex = tuple((e["id"], e["group"], e["end"], e["reason"], e["approver"])
               for e in s["exemptions"])  # fmt: skip
    out: list[Block] = [
        Heading("3. Categories switched on"),
        Para("A keyword category that is off raises no alert from typing or searches; website "
             "lists apply to the groups whose profile names them."),
        Table(("category", "name", "keyword list"), rows),
        Heading("Exemptions (time-limited, with a reason and an approver)", 3),
    ]
    if ex:
        out.append(Table(("id", "group", "ends", "reason", "approved by"), ex))
    else:
        out.append(Para("None in the current policy."))
    return out


def _usb(s: dict[str, Any]) -> list[Block]:
    rows = tuple((r["action"], r["name"], ", ".join(r["accounts"]) or "anyone", r["why"])
                 for r in s["usb_rules"])  # fmt: skip
    return [
        Heading("4. USB decisions"),
        Para("Keyboards, mice and other input devices are never blocked. A storage device that "
             "also acts as a keyboard or network card is rejected. Other storage is blocked "
             "unless one of these rules allows it (first match wins):"),
        Table(("action", "device", "for accounts", "why"), rows),
    ]


def _who(s: dict[str, Any]) -> list[Block]:
    rows = tuple((r["title"], "; ".join(PERMISSIONS.get(c, c) for c in r["can"]))
                 for r in s["roles"].values())  # fmt: skip
    return [
        Heading("5. Who can see what"),
        Para("Named console accounts, one role each; senior roles sign in with a second "
             "factor. Every page viewed and every action is written to a tamper-evident audit "
             "log."),
        Table(("role", "may"), rows),
    ]


def _where(s: dict[str, Any]) -> list[Block]:
    notify = []
    if s["notify_email"]:
        notify.append("email")
    if s["notify_webhook"]:
        notify.append("a webhook")
    told = (f"Severity {s['notify_min_severity']} and above are announced by "
            f"{' and '.join(notify)}; the message names no pupil, computer, words or site, "
            "only that an incident waits in the console." if notify else
            "No email or webhook notifications are set up.")  # fmt: skip
    return [
        Heading("6. Where the data is kept"),
        Bullets((
            f"On the school's own server, in the collector's data folder `{s['data_folder']}` "
            "(the database `collector.duckdb`, readable by the collector's account only). "
            "Nothing is sent to the supplier or any other company.",
            "Between PC and server: TLS with the school's own certificate authority; every "
            "batch is signed by the PC and chained, so changes are detected.",
            "On each PC: an outbox of detections not yet stored by the collector (at most "
            f"{s['pc_outbox_max_events']:,}), and detections the collector has stored, kept "
            f"for {s['pc_keep_acked_days']} days (at most {s['pc_keep_acked_events']:,}) so a "
            "restored server can get them back. Readable by the monitoring service only.",
            "Backups (`safeguard-collector backup`) hold the same data and keys: keep them as "
            "secret as the server, on another disk.",
            told,
        )),
    ]


def _retention(s: dict[str, Any]) -> list[Block]:
    return [
        Heading("7. How long it is kept"),
        Table(("what", "kept for"), (
            ("events (detections, USB decisions, health)", f.days(s["retention_events_days"])),
            ("closed incidents and their record", f.days(s["retention_incidents_days"])),
            ("open incidents and the events that are their evidence", "until closed, then as "
             "closed incidents"),
            ("detections on a PC after the collector stored them",
             f.days(s["pc_keep_acked_days"])),
        )),
        Para("Purges run daily and each is written to the audit log. The DSL or head teacher "
             "sets the periods (console: Retention)."),
    ]


def _rights(s: dict[str, Any]) -> list[Block]:
    return [
        Heading("8. Telling people"),
        Para("Pupils, parents and staff get the privacy notices in this pack. Each computer "
             f"also shows this notice at logon: \"{s['logon_notice']}\""),
        Heading("9. Risks and how they are reduced"),
        Table(("risk", "measure"), (
            ("Collecting more than needed", dpia_screenshots.risk(s)),
            ("Wrong conclusions about a child", "Every alert is reviewed by the DSL; outcomes "
             "are recorded; referrals need a second senior member of staff."),
            ("Staff seeing what they should not", "Roles; the technician and governors see no "
             "incident content; every view is audited."),
            ("Tampering with evidence", "Signed, hash-chained events and records, anchored "
             "outside the database (`safeguard-collector verify`)."),
            ("Keeping data too long", "Retention periods above, purged daily and audited."),
            ("Staff privacy", "The staff profile (section 2) is lighter: check it matches the "
             "staff acceptable-use policy."),
        )),
        Heading("10. Sign-off"),
        Table(("", "name", "date"), (("Data protection officer", "", ""),
                                     ("Head teacher", "", ""), ("DSL", "", ""))),
    ]


def dpia(s: dict[str, Any], fp: str, made: str, changed: list[str] | None,
         readability: str) -> Doc:  # fmt: skip
    blocks = [*_about(s, fp, made, changed, readability), *_purpose(s), *_captured(s),
              *_categories(s), *_usb(s), *_who(s), *_where(s), *_retention(s), *_rights(s)]
    return Doc("dpia", f"Data Protection Impact Assessment (draft): safeguarding monitor, "
               f"{s['school']}", tuple(blocks))  # fmt: skip
