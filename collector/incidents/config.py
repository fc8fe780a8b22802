"""Incident rules for the engine: the `incidents` part of the policy in `rules/`, or defaults.

`rules/lists/incidents.toml` (validated by `rules.load`) gives severity by category and score,
the grouping window, the silent-agent threshold, escalations, recurrences (grooming across
several days) and the fixed severities of candidates that are not detections. The defaults
here mirror that file, for a policy that does not load at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector import policy as published
from collector.intake import vocabulary
from collector.paths import DataDir
from rules import bundle as bundles
from rules.load import load_policy
from rules.schema import (
    Escalation,
    IncidentRules,
    Policy,
    PolicyError,
    Recurrence,
    SeverityRule,
)

log = logging.getLogger(__name__)


__all__ = ["DEFAULT_INCIDENTS", "DEFAULT_RECURRENCES", "EngineRules", "Recurrence", "SeverityRule",
           "for_collector", "load"]


@dataclass(frozen=True)
class EngineRules:
    incidents: IncidentRules
    recurrences: tuple[Recurrence, ...] = ()
    usb_blocked_severity: int = 3
    usb_rejected_severity: int = 4  # storage that also exposes HID or network: BadUSB
    tampering_severity: dict[str, int] = field(
        default_factory=lambda: {
            "gap": 3, "fork": 4, "replay": 4, "bad_signature": 4, "flood": 4, "malformed_field": 4,
        }
    )  # fmt: skip
    silent_agent_severity: int = 2
    capture_missing_severity: int = 3  # a desktop session with no keyboard helper
    # The agent's watchdog: a sensor stopped for using too much CPU (nothing is watched by it
    # until the next policy), a per-login helper restarted for its memory (a gap of seconds).
    # Fixed here; adding them to rules.schema.FIXED_SEVERITY would make them policy settings.
    sensor_shed_severity: int = 2
    helper_restarted_severity: int = 1
    test_alert_severity: int = 1
    source: str = "built-in defaults"
    # Categories some policy defines (collector/intake/vocabulary.py); None: not known, take any.
    # Ingest marks events with other names already; this keeps them off pages all the same.
    categories: frozenset[str] | None = None
    # Severity by (category, score), filled on first use: it is asked once per detection.
    _severity_cache: dict[tuple[str, int], int] = field(
        default_factory=dict, compare=False, repr=False
    )

    def severity(self, category: str, score: int) -> int:
        key = (category, score)
        found = self._severity_cache.get(key)
        if found is None:
            found = next(
                (r.severity for r in self.incidents.severities
                 if r.category in (category, "*") and score >= r.min_score),
                2,
            )  # fmt: skip
            self._severity_cache[key] = found
        return found

    def knows(self, category: str) -> bool:
        return self.categories is None or category in self.categories


DEFAULT_INCIDENTS = IncidentRules(
    severities=(
        SeverityRule("grooming", 20, 5),
        SeverityRule("grooming", 0, 4),
        SeverityRule("suicide", 0, 5),
        SeverityRule("self_harm", 0, 4),
        SeverityRule("extremism", 20, 5),
        SeverityRule("extremism", 0, 4),
        SeverityRule("illegal", 0, 5),
        SeverityRule("*", 30, 3),
        SeverityRule("*", 0, 2),
    ),
    group_window_minutes=30,
    silent_agent_minutes=120,
    escalations=(
        Escalation(
            ("extremism",),
            60,
            1,
            "An extremist site followed by related searches suggests active interest.",
            sequence=("url", "search"),
        ),
        Escalation(
            ("self_harm", "suicide"),
            60,
            1,
            "Self-harm and suicide signals together raise the risk to the child.",
        ),
    ),
)
DEFAULT_RECURRENCES = (
    Recurrence(
        "grooming",
        days=2,
        within_days=14,
        raise_by=1,
        why="Grooming language on several days suggests a continuing contact.",
    ),
)


def load(folder: Path | None = None) -> EngineRules:
    """The incident rules of a policy folder (default: rules/lists), or the built-in defaults."""
    try:
        policy = load_policy(folder)
    except (PolicyError, OSError) as exc:
        log.warning("incidents.rules_defaults reason=%s", str(exc).splitlines()[0])
        return EngineRules(DEFAULT_INCIDENTS, DEFAULT_RECURRENCES)
    where = str(folder) if folder else "the shipped policy"
    rules = _rules(policy, f"{where}, version {policy.version} (not published)")
    return replace(rules, categories=vocabulary.of_policy(policy).all_categories)


def for_collector(data: DataDir, folder: Path | None = None) -> tuple[EngineRules, str]:
    """The incident rules of the policy the agents run: the newest published bundle (checked
    against the collector's policy key), or, before anything is published, the folder
    console.toml names (default: the shipped policy). Also returns the published version
    they came from ("" for none), so a caller can tell when to load them again."""
    rules, version = _for_collector(data, folder)
    known = vocabulary.read(vocabulary.path_of(data))
    if known is not None:  # every published version's, not just the newest's
        rules = replace(rules, categories=known.all_categories | (rules.categories or frozenset()))
    return rules, version


def _for_collector(data: DataDir, folder: Path | None) -> tuple[EngineRules, str]:
    found = published.current(data)
    if found is None:
        return load(folder), ""
    version, raw = found
    try:
        key = Ed25519PublicKey.from_public_bytes(data.policy_pub.read_bytes())
        bundle = bundles.verify_bundle(raw, key)
    except (PolicyError, OSError, ValueError) as exc:
        # The agents refuse it and keep their last good bundle; this falls back to the folder
        # (or the shipped rules) instead, and says so in the log and in `source`.
        log.error("incidents.published_policy_refused version=%d reason=%s", version,
                  str(exc).splitlines()[0])  # fmt: skip
        return load(folder), str(version)
    rules = _rules(bundle.policy, f"published policy version {bundle.version}")
    return replace(rules, categories=vocabulary.of_policy(bundle.policy).all_categories), str(
        version
    )


def _rules(policy: Policy, source: str) -> EngineRules:
    inc = policy.incidents
    fixed = dict(inc.fixed)
    kinds = ("fork", "replay", "bad_signature", "flood", "malformed_field")
    tampering = {k: fixed["tampering"] for k in kinds}
    return EngineRules(
        inc,
        inc.recurrences,
        usb_blocked_severity=fixed["usb_blocked"],
        usb_rejected_severity=fixed["usb_rejected"],
        tampering_severity={"gap": fixed["tampering_gap"], **tampering},
        silent_agent_severity=fixed["silent_agent"],
        capture_missing_severity=fixed["capture_missing"],
        test_alert_severity=fixed["test_alert"],
        source=source,
    )
