"""The KS2 readability check of the pupils' privacy notice.

The measure: Flesch-Kincaid grade level at most 6. A US grade 6 reader is 11 to 12 years old,
the oldest Key Stage 2 pupil (ages 7 to 11), so a notice at grade 6 or below is within reach of
the children it is for; the grade is also reported next to Flesch reading ease, for those used
to that score. textstat counts syllables from its bundled dictionary (no network).
"""

from __future__ import annotations

from dataclasses import dataclass

import textstat

KS2_MAX_GRADE = 6.0


@dataclass(frozen=True)
class Readability:
    grade: float  # Flesch-Kincaid grade level
    ease: float  # Flesch reading ease (higher is easier)

    @property
    def passed(self) -> bool:
        return self.grade <= KS2_MAX_GRADE

    def line(self) -> str:
        verdict = "passed" if self.passed else "FAILED: shorten its sentences and words"
        return (f"KS2 readability: Flesch-Kincaid grade {self.grade:.1f} (at most "
                f"{KS2_MAX_GRADE:.0f} to pass), Flesch reading ease {self.ease:.0f}: {verdict}")


def ks2(text: str) -> Readability:
    return Readability(float(textstat.flesch_kincaid_grade(text)),
                       float(textstat.flesch_reading_ease(text)))  # fmt: skip
