"""What the DPIA pack says about screenshot evidence, from the live policy's screenshots.toml
(summarised by collector/privacy/dpia_settings.py: False when none are taken).

Said every time: whether screenshots are on; for which profiles, categories and severities;
what is never captured (grooming, pornography, illegal content, staff, password windows); that
the PC seals each one to the collector's key and cannot read it back; where it is kept; who
sees it (DSL roles, every view audited); how long; and that it reaches a CPOMS export only when
the DSL ticks the box.
"""

from __future__ import annotations

from typing import Any

from collector import accounts
from collector.privacy import dpia_facts as f
from rules.schema import NEVER_SCREENSHOT


def settings(pol_screenshots: Any) -> dict[str, Any] | bool:
    """The summary's `screenshots`: False when the policy captures nothing."""
    sc = pol_screenshots
    if sc is None or not sc.enabled or not sc.rules:
        return False
    rules = [{"profile": r.profile, "categories": list(r.categories),
              "min_severity": r.min_severity} for r in sc.rules]  # fmt: skip
    return {
        "rules": rules,
        "retention_days": sc.retention_days,
        "max_width": sc.max_width,
        "budget_mb": sc.budget_mb,
    }


def _period(s: dict[str, Any]) -> str:
    days = s["screenshots"]["retention_days"]
    return (f.days(days) if days else
            f"as events ({f.days(s['retention_events_days'])})")  # fmt: skip


def _who() -> str:
    return ", ".join(accounts.ROLES[r] for r in sorted(accounts.CAN["screenshots"]))


def technical(s: dict[str, Any]) -> str:
    """The DPIA's line under "What is captured"."""
    sc = s["screenshots"]
    if not sc:
        return "Screenshots: off. The system takes no screenshots."
    rules = "; ".join(f"profile `{r['profile']}`: {', '.join(r['categories'])} at severity "
                      f"{r['min_severity']} or above" for r in sc["rules"])  # fmt: skip
    return (f"Screenshots: ON for {rules}. When such a detection fires, the PC's monitoring "
            "service captures only the window the detection names, scaled to at most "
            f"{sc['max_width']} pixels across, and seals it on the PC to the collector's "
            "evidence key, so the PC cannot read it back (up to "
            f"{sc['budget_mb']} MB wait on a PC; past that the oldest are dropped and counted). "
            f"Never captured: {', '.join(NEVER_SCREENSHOT)} (a picture could itself be an "
            "indecent image of a child or illegal content), the staff profile, or a password "
            f"window. Kept sealed in the data folder's `screenshots` folder; seen only by: "
            f"{_who()}, every view written to the audit log; kept {_period(s)}, longer only "
            "while its event is evidence of an open incident; included in a CPOMS export only "
            "when the DSL ticks the box, which the audit log also records.")


def risk(s: dict[str, Any]) -> str:
    """The 'collecting more than needed' measure in the risks table."""
    shots = ("screenshots only of the window a serious detection names, sealed on the PC, seen "
             "by DSL roles only" if s["screenshots"] else "no screenshots")
    return (f"Detections only, with a capped context; no keystroke log, {shots}; browsing only "
            "on a match unless switched on.")


def adults(s: dict[str, Any]) -> str:
    """The line in the parents' and staff notices."""
    if not s["screenshots"]:
        return "Screenshots: none are taken."
    return ("Screenshots: when a pupil's computer finds one of the most serious concerns, it "
            "takes a picture of that window only. It is locked so that only the safeguarding "
            f"leads and the head teacher can open it, each look is recorded, and it is deleted "
            f"after {_period(s)}. Staff are never pictured.")


def child(s: dict[str, Any]) -> str:
    """The line in the pupils' notice (KS2 words)."""
    if not s["screenshots"]:
        return "It does not take pictures of your screen."
    return ("If it finds something very worrying, it takes a picture of that window. Only the "
            "adults who keep you safe can see it.")
