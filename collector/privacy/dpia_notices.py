"""The three privacy notices of the DPIA pack (pupils, parents, staff), from a settings summary.

The pupils' notice is for Key Stage 2 children (ages 7 to 11): short sentences and common
words, checked with a readability score (collector/privacy/dpia_readability.py). Every sentence that
depends on a setting is chosen by that setting, so a notice never promises what the system
does not do.
"""

from __future__ import annotations

from typing import Any

from collector.privacy import dpia_facts as f
from collector.privacy import dpia_screenshots
from collector.privacy.dpia_doc import Block, Bullets, Doc, Heading, Para


def _child_period(n: int) -> str:
    if n < 60:
        return f"{n} days"
    if n < 365 * 2 - 30:
        return f"about {round(n / 30.4)} months" if n < 330 else "about a year"
    return f"about {round(n / 365)} years"


def pupils(s: dict[str, Any]) -> Doc:
    profs = f.profiles(s, staff=False)
    types = f.senses(profs, "keyboard")
    browses = f.senses(profs, "browser")
    full_log = any(p["full_browsing_log"] for p in profs.values())
    blocks: list[Block] = [
        Para("The school wants you to be safe online. A computer program helps us. It runs "
             "on the school computers."),
        Heading("What it looks for"),
        Para("It looks for signs that a child may not be safe. It looks for:"),
        Bullets(tuple(f.child_words(c) for c in f.union(s, profs)) or ("nothing yet",)),
    ]
    how = []
    if types:
        how.append("It checks the words you type.")
    if browses:
        how.append("It checks what you search for and the websites you visit.")
    if s["semantic_model"] is not None and any(p["semantic"] for p in profs.values()):
        how.append("It also checks what a whole sentence means.")
    blocks += [Heading("How it works"), Para(" ".join(how) or "It checks very little.")]
    keeps = ["It does not keep all that you type." if types else "It does not see what you type.",
             "It keeps only the few words near a word that worries us. That is up to "
             f"{s['context_words']} words." if types else "",
             "It keeps a list of all the websites you visit." if full_log else
             "It does not keep a list of all the websites you visit.",
             "It keeps a website only if it is on our list of bad sites." if browses
             and not full_log else "",
             dpia_screenshots.child(s)]  # fmt: skip
    blocks += [Heading("What it keeps"), Bullets(tuple(k for k in keeps if k))]
    if f.senses(profs, "usb"):
        blocks += [Heading("Memory sticks"),
                   Para("Do not plug in a memory stick. The computer will not let it work. "
                        "It will also tell us that you tried.")]  # fmt: skip
    blocks += [
        Heading("Who can see it"),
        Para("Only a few adults can see what it finds. They are the teachers who keep "
             "children safe, and the head teacher. They use it to help you."),
        Heading("How long we keep it"),
        Para(f"We keep what it finds for {_child_period(s['retention_events_days'])}. Then we "
             "delete it. If we had to help you, we keep our notes for longer."),
        Heading("Where we keep it"),
        Para("We keep it on a computer in our school. We do not give it to other firms."),
        Heading("If you have a question"),
        Para("You can ask your teacher. If you are worried, talk to an adult you trust."),
    ]
    return Doc("notice-pupils", "How the school computers help keep you safe", tuple(blocks))


def _what(s: dict[str, Any], profs: dict[str, dict[str, Any]], who: str) -> list[Block]:
    cats = "; ".join(f.title(s, c) for c in f.union(s, profs)) or "none"
    typing = f.senses(profs, "keyboard")
    full_log = any(p["full_browsing_log"] for p in profs.values())
    items = [
        f"It looks for signs of risk in these areas: {cats}.",
        (f"Typing is checked on the computer itself. Keystrokes are never stored or sent; only "
         f"a match is recorded, with at most {s['context_words']} words around it, the program "
         f"and window title, the account and the computer." if typing else
         f"What {who} type is not monitored."),
        ("Every website visited is recorded (a full browsing log is switched on)." if full_log
         else "A website is recorded only when it is on a list of harmful sites, with the few "
              "sites visited just before it; a search only when it matches a keyword list."),
        "USB devices: each device plugged in is recorded; USB storage is blocked unless the "
        "school has approved it.",
        dpia_screenshots.adults(s),
    ]  # fmt: skip
    if s["semantic_model"] is not None and any(p["semantic"] for p in profs.values()):
        what = "whole sentences typed and searches" if typing else "searches"
        items.append(f"A small language model on the computer also checks the meaning of {what}; "
                     "it sends nothing but an alert.")  # fmt: skip
    return [Heading("What is checked, and what is not"), Bullets(tuple(items))]


def _common(s: dict[str, Any]) -> list[Block]:
    return [
        Heading("Who sees it"),
        Para("Only the Designated Safeguarding Lead, their deputies and the head teacher read "
             "what is found. The IT technician sees whether the computers are working, not what "
             "was found. Governors see numbers only, never names. Every view is logged."),
        Heading("How long it is kept"),
        Para(f"Records of what was found: {f.days(s['retention_events_days'])}. Safeguarding "
             f"incidents, once closed: {f.days(s['retention_incidents_days'])}. Open incidents "
             "are kept until they are closed."),
        Heading("Where it is kept"),
        Para("On the school's own server, in school. It is not sent to the supplier or any "
             "other company. Each computer keeps what it found for "
             f"{s['pc_keep_acked_days']} days after the server has it, in case the server "
             "has to be restored."),
    ]


def parents(s: dict[str, Any]) -> Doc:
    profs = f.profiles(s, staff=False)
    blocks: list[Block] = [
        Para(f"{s['school']} monitors the use of school computers to keep pupils safe, as "
             "Keeping Children Safe in Education asks of every school. This notice says what "
             "is recorded about your child, who sees it and how long it is kept."),
        *_what(s, profs, "pupils"),
        *_common(s),
        Heading("What happens when something is found"),
        Para("The Designated Safeguarding Lead reviews it and decides what to do, as with any "
             "other safeguarding concern. The system decides nothing on its own."),
        Heading("Your rights"),
        Para("You may ask to see the information held about your child, and to have it "
             "corrected. Ask the school office or the school's data protection officer."),
    ]  # fmt: skip
    return Doc("notice-parents", "Privacy notice for parents and carers: online safety "
               "monitoring", tuple(blocks))  # fmt: skip


def _staff_alerts() -> list[Block]:
    return [Heading("Alerts about staff"),
            Para("An alert about a member of staff on the school's roster goes to the head "
                 "teacher, as Keeping Children Safe in Education (Part 4) asks, and not to the "
                 "rest of the safeguarding team (only when the school has no head teacher on "
                 "the console does the DSL see it).")]  # fmt: skip


def staff(s: dict[str, Any]) -> Doc:
    profs = f.profiles(s, staff=True)
    if profs:
        what = _what(s, profs, "staff")
    else:
        what = [Heading("What is checked"),
                Para("No profile for staff is set: staff accounts are monitored like pupils' "
                     "unless the policy assigns them a staff profile.")]  # fmt: skip
    blocks: list[Block] = [
        Para(f"{s['school']} monitors school computers under its online safety and acceptable "
             "use policies. This notice says what is recorded when staff use them."),
        *what,
        *_common(s),
        *(_staff_alerts() if s.get("roster") else []),
        Heading("Your own use of the console"),
        Para("If you use the safeguarding console, everything you view or do there is written "
             "to an audit log that the DSL and head teacher can read."),
        Heading("Your rights"),
        Para("You may ask to see the information held about you. Ask the school's data "
             "protection officer."),
    ]  # fmt: skip
    return Doc("notice-staff", "Privacy notice for staff: monitoring of school computers",
               tuple(blocks))
