"""The concerns a DSL records a candidate under: one concern per candidate (issue 17).

Grouping by pupil alone put grooming, suicide, violence and extremism from one pupil into one
candidate titled by whichever was most severe, with one outcome for all four. A candidate now
holds one concern; the categories that belong together (grooming and sexual content; self-harm
and suicide; extremism and discrimination) share one. A category no concern names is its own.
Candidates of the same pupil close in time are linked as related (queries.related), not merged.
"""

from __future__ import annotations

CONCERNS = {
    "sexual": "Grooming and sexual content",
    "self_harm": "Self-harm and suicide",
    "extremism": "Extremism and discrimination",
    "violence": "Violence",
    "bullying": "Bullying",
    "drugs": "Drugs",
    "gambling": "Gambling",
    "illegal": "Illegal content",
}
_OF_CATEGORY = {
    "grooming": "sexual",
    "pornography": "sexual",
    "sexual_content": "sexual",
    "self_harm": "self_harm",
    "suicide": "self_harm",
    "extremism": "extremism",
    "discrimination": "extremism",
    "radicalisation": "extremism",
    "violence": "violence",
    "weapons": "violence",
    "bullying": "bullying",
    "drugs": "drugs",
    "gambling": "gambling",
    "illegal": "illegal",
}


def concern_of(kind: str, category: str) -> str:
    """The concern a signal is grouped under: for detections, from its category; other kinds
    (USB, tampering, a silent PC) group by kind as before ('')."""
    if kind != "detection":
        return ""
    return _OF_CATEGORY.get(category, category)


def title(concern: str) -> str:
    return CONCERNS.get(concern, concern.replace("_", " ").capitalize())
