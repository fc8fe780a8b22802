"""What changed between two packs' settings, in sentences (collector/privacy/dpia_changes.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from collector.privacy.dpia_changes import changes

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "school": "Oak Primary",
    "policy_version": 3,
    "categories": {"gambling": {"title": "Gambling", "on": False},
                   "grooming": {"title": "Grooming", "on": True}},
    "profiles": {"ks2": {"title": "KS2", "sensors": ["browser", "keyboard", "usb"],
                         "categories": ["gambling", "grooming"], "url_categories": ["grooming"],
                         "full_browsing_log": False, "semantic": True}},
    "assignments": ["group safeguard-ks2 -> ks2"],
    "usb_rules": [{"action": "allow", "name": "Merilock", "why": "CPOMS", "accounts": []}],
    "semantic_model": "minilm.onnx",
    "exemptions": [],
    "retention_events_days": 90,
    "retention_incidents_days": 2190,
    "pc_keep_acked_days": 7,
    "screenshots": False,
    "roles": {"governor": {"title": "Governor", "can": ["governors"]}},
}  # fmt: skip


def changed(**edits: Any) -> dict[str, Any]:
    new = copy.deepcopy(BASE)
    new.update(edits)
    return new


def test_nothing_changed_says_nothing() -> None:
    assert changes(BASE, copy.deepcopy(BASE)) == []


def test_a_category_and_a_retention_period() -> None:
    new = changed(retention_events_days=30)
    new["categories"]["gambling"]["on"] = True
    assert changes(BASE, new) == [
        "Category 'gambling' switched on",
        "Retention for events changed from 90 to 30 days",
    ]
    assert changes(new, BASE) == [
        "Category 'gambling' switched off",
        "Retention for events changed from 30 to 90 days",
    ]


def test_profiles_semantic_usb_exemptions_and_roles() -> None:
    new = changed(semantic_model=None, policy_version=4, usb_rules=[],
                  exemptions=[{"id": "history", "group": "ks2"}],
                  roles={"governor": {"title": "Governor", "can": ["governors", "incidents"]}})
    prof = new["profiles"]["ks2"]
    prof["full_browsing_log"] = True
    prof["url_categories"].append("gambling")
    prof["sensors"].remove("keyboard")
    assert changes(BASE, new) == [
        "Profile 'ks2': sensor 'keyboard' removed",
        "Profile 'ks2': website list 'gambling' added",
        "Profile 'ks2': full browsing log switched on",
        "Semantic model switched off",
        "USB rule 'Merilock' removed",
        "Exemption 'history' added",
        "Role 'governor': may 'incidents' added",
        "Policy version changed from 3 to 4",
    ]


def test_a_setting_this_module_does_not_know_is_still_reported() -> None:
    new = changed(notify_email=True, roster="sims.csv")
    assert changes(BASE, new) == [
        "Setting 'notify_email' changed from None to True",
        "Setting 'roster' changed from None to 'sims.csv'",
    ]


def test_a_category_new_to_the_policy() -> None:
    new = changed()
    new["categories"]["scams"] = {"title": "Scams", "on": True}
    del new["categories"]["grooming"]
    assert changes(BASE, new) == ["Category 'scams' added (on)", "Category 'grooming' removed"]
