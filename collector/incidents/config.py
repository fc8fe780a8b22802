"""Incident rules for the engine: the `incidents` part of the policy in `rules/`, or defaults.

`rules/lists/incidents.toml` (validated by `rules.load`) gives severity by category and score,
the grouping window, the silent-agent threshold and escalations. What that file cannot say yet
(fixed severities for USB, tampering and silent agents; grooming across several days) has
defaults here, documented in docs/console.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from rules.load import load_policy
from rules.schema import Escalation, IncidentRules, PolicyError, SeverityRule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recurrence:
    """The same category on `days` different days within `within_days`: raise by `raise_by`."""

    category: str
    days: int
    within_days: int
    raise_by: int
    why: str


@dataclass(frozen=True)
class EngineRules:
    incidents: IncidentRules
    recurrences: tuple[Recurrence, ...] = ()
    usb_blocked_severity: int = 3
    usb_rejected_severity: int = 4  # storage that also exposes HID or network: BadUSB
    tampering_severity: dict[str, int] = field(
        default_factory=lambda: {"gap": 3, "fork": 4, "replay": 4, "bad_signature": 4, "flood": 4}
    )
    silent_agent_severity: int = 2
    test_alert_severity: int = 1
    notify_at: int = 5  # a candidate at or above this severity reaches the DSL at once
    source: str = "built-in defaults"
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
    """The policy's incident rules (default: rules/lists), or the built-in defaults."""
    try:
        policy = load_policy(folder)
    except (PolicyError, OSError) as exc:
        log.warning("incidents.rules_defaults reason=%s", str(exc).splitlines()[0])
        return EngineRules(DEFAULT_INCIDENTS, DEFAULT_RECURRENCES)
    return EngineRules(
        policy.incidents,
        DEFAULT_RECURRENCES,
        source=f"policy version {policy.version}",
    )
