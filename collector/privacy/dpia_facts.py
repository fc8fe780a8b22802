"""Facts the DPIA pack's texts share, read off a settings summary
(collector/privacy/dpia_settings.py).

Which profiles are staff's (a profile whose name or title says "staff"; every other profile is
taken as pupils'), which categories are really on for a profile (a keyword category counts only
when the category is switched on; website lists apply as the profile names them, whether or not
the category's keyword list is on: that is what rules/urls.py does), and words for periods.
"""

from __future__ import annotations

from typing import Any

# Each category in words a KS2 pupil knows (collector/privacy/dpia_notices.py, pupils' notice).
CHILD_WORDS = {
    "extremism": "hate, or groups that want to hurt people",
    "grooming": "someone trying to trick you, or asking for secrets or photos",
    "self_harm": "hurting yourself",
    "suicide": "not wanting to be alive",
    "bullying": "bullying, or being unkind",
    "discrimination": "being mean to people for who they are",
    "drugs": "drugs",
    "pornography": "rude pictures or videos",
    "violence": "fights, hurting people, or weapons",
    "gambling": "betting money",
    "illegal": "things that are against the law",
}


def is_staff(name: str, profile: dict[str, Any]) -> bool:
    return "staff" in name.lower() or "staff" in str(profile["title"]).lower()


def profiles(s: dict[str, Any], staff: bool) -> dict[str, dict[str, Any]]:
    return {n: p for n, p in s["profiles"].items() if is_staff(n, p) == staff}


def keyword_on(s: dict[str, Any], profile: dict[str, Any]) -> list[str]:
    """Keyword categories that alert for this profile: named by it and switched on."""
    cats = s["categories"]
    return [c for c in profile["categories"] if c in cats and cats[c]["on"]]


def union(s: dict[str, Any], profs: dict[str, dict[str, Any]]) -> list[str]:
    """Every category any of these profiles watches, by keyword or by website list, in the
    policy's order."""
    seen = {c for p in profs.values() for c in [*keyword_on(s, p), *p["url_categories"]]}
    return [c for c in s["categories"] if c in seen]


def title(s: dict[str, Any], category: str) -> str:
    cat = s["categories"].get(category)
    return str(cat["title"]) if cat else category


def child_words(category: str) -> str:
    return CHILD_WORDS.get(category, category.replace("_", " "))


def days(n: int) -> str:
    """'365 days (about 1 year)'; plain days under two months."""
    if n < 60:
        return f"{n} days"
    years = n / 365
    if years >= 1 and abs(years - round(years)) < 0.05:
        about = f"about {round(years)} year{'s' if round(years) != 1 else ''}"
    else:
        about = f"about {round(n / 30.4)} months"
    return f"{n} days ({about})"


def senses(profs: dict[str, dict[str, Any]], sensor: str) -> bool:
    return any(sensor in p["sensors"] for p in profs.values())


def usb_allowed(s: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in s["usb_rules"] if r["action"] == "allow"]
