"""A candidate as the engine builds it: the signals of one pupil (or machine) grouped, with the
severity and categories they add up to. Its own module so escalation and the engine share it."""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.incidents.signals import Signal

SUMMARY_CAP = 300  # characters of "; "-joined summaries kept on a candidate


@dataclass
class Candidate:
    id: int
    kind: str
    agent_id: str
    account: str
    first_ms: int
    last_ms: int
    base_severity: int
    severity: int
    category: str
    categories: set[str]
    summary: list[str]
    event_count: int
    notified_severity: int  # what the DSL was last told (0: never)
    new: bool = False
    escalation: str = ""
    was: tuple[str, int] | None = None  # (category, severity) as stored, for the record
    signals: list[Signal] = field(default_factory=list)
    concern: str = ""  # collector/incidents/concerns.py: one concern per candidate

    def add(self, s: Signal) -> None:
        self.first_ms = min(self.first_ms, s.observed_ms)
        self.last_ms = max(self.last_ms, s.observed_ms)
        if s.severity > self.base_severity or not self.categories:
            self.base_severity, self.category = max(self.base_severity, s.severity), s.category
        self.categories.add(s.category)
        if s.summary not in self.summary and len("; ".join(self.summary)) < SUMMARY_CAP:
            self.summary.append(s.summary)
        self.event_count += 1
        self.signals.append(s)
