"""Loading the screenshot-evidence part of a policy (both files optional):

    screenshots.toml     [screenshots]: enabled, max_width, budget_mb, retention_days;
                         [[rule]]: profile, categories, min_severity
    evidence_key.toml    [evidence_key]: x25519, the collector's public key (base64), which
                         the collector writes into every bundle it publishes

A rule that names a category screenshots must never cover (grooming, pornography, illegal)
or the staff profile is refused, so a typo cannot turn on what the design forbids.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from rules.fields import Source
from rules.schema import NEVER_SCREENSHOT, STAFF_PROFILE, PolicyError, ScreenshotRule, Screenshots

_KEY_LEN = 32


def screenshots_of(src: Mapping[str, Source], cats: set[str],
                   profiles: set[str]) -> Screenshots | None:  # fmt: skip
    if "screenshots.toml" not in src:
        return None
    file = src["screenshots.toml"]
    file.check_top({"screenshots", "rule"})
    head = file.table("screenshots")
    head.check_keys({"enabled", "max_width", "budget_mb", "retention_days"})
    rules = []
    for t in file.array("rule"):
        t.check_keys({"profile", "categories", "min_severity"})
        profile = t.get_str("profile", choices=tuple(sorted(profiles)))
        if profile == STAFF_PROFILE:
            raise t.fail("staff are never captured: remove this rule", "profile")
        categories = t.get_strs("categories", required=True, choices=tuple(sorted(cats)))
        forbidden = sorted(set(categories) & set(NEVER_SCREENSHOT))
        if forbidden:
            why = "a picture could itself be an indecent image of a child or illegal content"
            raise t.fail(f"{', '.join(forbidden)} is never captured ({why})", "categories")
        rules.append(ScreenshotRule(profile, categories, t.get_int("min_severity", lo=1, hi=5),
                                    t.where))  # fmt: skip
    return Screenshots(
        enabled=head.get_bool("enabled", False),
        rules=tuple(rules),
        max_width=head.get_int("max_width", 1280, lo=320, hi=3840),
        budget_mb=head.get_int("budget_mb", 20, lo=1, hi=500),
        retention_days=head.get_int("retention_days", 0, lo=0, hi=3650),
    )


def evidence_key_of(src: Mapping[str, Source]) -> bytes:
    if "evidence_key.toml" not in src:
        return b""
    file = src["evidence_key.toml"]
    file.check_top({"evidence_key"})
    t = file.table("evidence_key")
    t.check_keys({"x25519"})
    text = t.get_text("x25519")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise t.fail("x25519 must be base64", "x25519") from None
    if len(raw) != _KEY_LEN:
        raise t.fail(f"x25519 must be {_KEY_LEN} bytes, got {len(raw)}", "x25519")
    return raw


def evidence_key_file(raw: bytes) -> str:
    """The text of evidence_key.toml for a raw public key (the collector writes it)."""
    if len(raw) != _KEY_LEN:
        raise PolicyError(f"an evidence key must be {_KEY_LEN} bytes")
    return ("# The collector's screenshot evidence key (X25519, public). Written by the collector\n"
            "# when it publishes; PCs seal screenshots to it and cannot read them back.\n"
            f'[evidence_key]\nx25519 = "{base64.b64encode(raw).decode("ascii")}"\n')  # fmt: skip
