"""What changed between the settings of the last DPIA pack and now, in sentences.

Pure: two summaries (collector/privacy/dpia_settings.py) in, a list of sentences out, in a fixed
order so the same change always reads the same. A key this module does not know still gets a
plain "changed" sentence, so no change ever goes unreported."""

from __future__ import annotations

from typing import Any

_DAYS = {
    "retention_events_days": "Retention for events",
    "retention_incidents_days": "Retention for closed incidents",
    "pc_keep_acked_days": "What PCs keep after the collector has stored it",
}
_FLAGS = {"full_browsing_log": "full browsing log", "semantic": "semantic stage"}
_LISTS = {"sensors": "sensor", "categories": "keyword category",
          "url_categories": "website list"}  # fmt: skip


def _on(value: object) -> str:
    return "on" if value else "off"


def _added_removed(what: str, old: list[Any], new: list[Any]) -> list[str]:
    out = [f"{what} '{x}' added" for x in new if x not in old]
    return out + [f"{what} '{x}' removed" for x in old if x not in new]


def _categories(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for name, cat in new.items():
        if name not in old:
            out.append(f"Category '{name}' added ({_on(cat['on'])})")
        elif old[name]["on"] != cat["on"]:
            out.append(f"Category '{name}' switched {_on(cat['on'])}")
    return out + [f"Category '{name}' removed" for name in old if name not in new]


def _profiles(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for name, prof in new.items():
        if name not in old:
            out.append(f"Profile '{name}' added")
            continue
        was = old[name]
        for key, word in _LISTS.items():
            out += [f"Profile '{name}': {s}" for s in _added_removed(word, was[key], prof[key])]
        for key, word in _FLAGS.items():
            if was[key] != prof[key]:
                out.append(f"Profile '{name}': {word} switched {_on(prof[key])}")
        if was["title"] != prof["title"]:
            out.append(f"Profile '{name}' renamed from '{was['title']}' to '{prof['title']}'")
    return out + [f"Profile '{name}' removed" for name in old if name not in new]


def _by_key(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {str(r[key]): r for r in rows}


def _named(what: str, key: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    a, b = _by_key(old, key), _by_key(new, key)
    out = _added_removed(what, list(a), list(b))
    return out + [f"{what} '{k}' changed" for k in b if k in a and a[k] != b[k]]


def _roles(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for role, r in new.items():
        was = old.get(role, {"can": []})
        out += [f"Role '{role}': {s}" for s in _added_removed("may", was["can"], r["can"])]
    return out + [f"Role '{role}' removed" for role in old if role not in new]


def _screenshots(old: Any, new: Any) -> list[str]:
    """Screenshots switched on or off, their rules and their retention (False: none taken)."""
    if bool(old) != bool(new):
        return ["Screenshots switched on" if new else "Screenshots switched off"]
    if not new or old == new:
        return []
    out = []
    if old["rules"] != new["rules"]:
        out.append("Screenshot rules changed (which profiles, categories and severities)")
    if old["retention_days"] != new["retention_days"]:
        days = new["retention_days"] or "as events"
        out.append(f"Screenshot retention changed from {old['retention_days'] or 'as events'} "
                   f"to {days}{' days' if new['retention_days'] else ''}")  # fmt: skip
    if len(out) == 0:
        out.append("Screenshot settings changed (size or what a PC may hold)")
    return out


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Sentences saying what differs from `old` to `new`; empty when nothing does."""
    out: list[str] = []
    handled = {"categories", "profiles", "usb_rules", "exemptions", "roles", "policy_version",
               "semantic_model", "assignments", "screenshots", *_DAYS}  # fmt: skip
    out += _categories(old.get("categories", {}), new["categories"])
    for key, what in _DAYS.items():
        if key in old and old[key] != new[key]:
            out.append(f"{what} changed from {old[key]} to {new[key]} days")
    out += _profiles(old.get("profiles", {}), new["profiles"])
    if old.get("semantic_model") != new["semantic_model"]:
        if new["semantic_model"] is None:
            out.append("Semantic model switched off")
        elif old.get("semantic_model") is None:
            out.append(f"Semantic model switched on ('{new['semantic_model']}')")
        else:
            out.append(f"Semantic model changed from '{old['semantic_model']}' to "
                       f"'{new['semantic_model']}'")  # fmt: skip
    out += _named("USB rule", "name", old.get("usb_rules", []), new["usb_rules"])
    out += _named("Exemption", "id", old.get("exemptions", []), new["exemptions"])
    out += _added_removed("Profile assignment", old.get("assignments", []), new["assignments"])
    out += _roles(old.get("roles", {}), new["roles"])
    out += _screenshots(old.get("screenshots", False), new.get("screenshots", False))
    for key in sorted(set(new) | set(old)):
        if key not in handled and old.get(key) != new.get(key):
            out.append(f"Setting '{key}' changed from {old.get(key)!r} to {new.get(key)!r}")
    if old.get("policy_version") != new["policy_version"]:
        out.append(f"Policy version changed from {old.get('policy_version')} to "
                   f"{new['policy_version']}")  # fmt: skip
    return out
