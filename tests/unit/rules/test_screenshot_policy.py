"""screenshots.toml and evidence_key.toml: what a policy may switch on, and what it never may."""

from __future__ import annotations

import base64

import pytest

from rules.load import DEFAULT_DIR, load_files, read_folder
from rules.load_evidence import evidence_key_file
from rules.schema import PolicyError

pytestmark = pytest.mark.unit


def _with(screenshots: str, **extra: str) -> dict[str, str]:
    files = read_folder(DEFAULT_DIR)
    files = {k: v for k, v in files.items() if not k.startswith("semantic")}  # faster
    files["screenshots.toml"] = screenshots
    files.update(extra)
    return files


ON = """[screenshots]
enabled = true
[[rule]]
profile = "ks2"
categories = ["violence", "suicide"]
min_severity = 4
"""


def test_the_shipped_policy_takes_no_screenshots() -> None:
    shipped = load_files(read_folder(DEFAULT_DIR)).screenshots
    assert shipped is not None and not shipped.enabled
    assert shipped.min_severity("ks2", "violence") is None


def test_a_rule_captures_its_profile_and_categories_only() -> None:
    shots = load_files(_with(ON)).screenshots
    assert shots is not None
    assert shots.min_severity("ks2", "violence") == 4
    assert shots.min_severity("ks2", "bullying") is None
    assert shots.min_severity("ks1", "violence") is None


@pytest.mark.parametrize("category", ["grooming", "pornography", "illegal"])
def test_a_rule_for_a_never_captured_category_is_refused(category: str) -> None:
    with pytest.raises(PolicyError, match=rf"screenshots.toml:\d+: .*{category} is never captured"):
        load_files(_with(ON.replace('"suicide"', f'"{category}"')))


def test_a_rule_for_staff_is_refused() -> None:
    with pytest.raises(PolicyError, match="staff are never captured"):
        load_files(_with(ON.replace('"ks2"', '"staff"')))


def test_the_evidence_key_loads_and_a_bad_one_is_refused() -> None:
    raw = bytes(range(32))
    keyed = load_files(_with(ON, **{"evidence_key.toml": evidence_key_file(raw)}))
    assert keyed.evidence_key == raw
    short = '[evidence_key]\nx25519 = "' + base64.b64encode(b"x" * 31).decode() + '"\n'
    with pytest.raises(PolicyError, match=r"evidence_key\.toml:2: x25519 must be 32 bytes"):
        load_files(_with(ON, **{"evidence_key.toml": short}))
