"""Which days are school days, for the reports' daily and weekly series.

A school sets its terms in DATA/console.toml:

[school]
term_dates = ["2026-09-03:2026-10-23", "2026-11-02:2026-12-18"]

Weekends are never school days; with no term dates every weekday is one. A chart of days
the school was shut would show empty bars a reader takes for good news.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

HINT = 'term_dates is a list of "first:last" dates, e.g. ["2026-09-03:2026-10-23"]'


@dataclass(frozen=True)
class Terms:
    """The school's terms as (first, last) days, both included; empty: no term dates set."""

    spans: tuple[tuple[dt.date, dt.date], ...] = ()

    @classmethod
    def parse(cls, value: object) -> Terms:
        """From console.toml's list; a ValueError says what is wrong in a plain sentence."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(HINT)
        spans = []
        for text in value:
            first, sep, last = text.partition(":")
            try:
                span = dt.date.fromisoformat(first.strip()), dt.date.fromisoformat(last.strip())
            except ValueError:
                raise ValueError(f"term dates {text!r}: {HINT}") from None
            if not sep or span[1] < span[0]:
                raise ValueError(f"term dates {text!r}: the last day comes before the first")
            spans.append(span)
        return cls(tuple(sorted(spans)))

    def is_school_day(self, day: dt.date) -> bool:
        if day.weekday() >= 5:
            return False
        return not self.spans or any(a <= day <= b for a, b in self.spans)

    def days(self, first: dt.date, count: int) -> list[dt.date]:
        """The school days among `count` days from `first`."""
        span = (first + dt.timedelta(days=i) for i in range(count))
        return [d for d in span if self.is_school_day(d)]

    def this_and_last(self, today: dt.date) -> tuple[dt.date, dt.date, int] | None:
        """(first day of this term, first day of the term before, days into this term up to
        today), so the two can be compared over the same length; None without two terms begun.
        "This term" is the last begun by today (in a holiday: the one just ended)."""
        begun = [a for a, _ in self.spans if a <= today]
        if len(begun) < 2:
            return None
        return begun[-1], begun[-2], (today - begun[-1]).days + 1

    def any_school_day(self, days: Iterable[dt.date]) -> bool:
        return any(self.is_school_day(d) for d in days)
