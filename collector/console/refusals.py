"""Refused requests in the audit log without letting a flood flood it (issue 16).

A refusal is a 403 (a page the role may not see, a form without its token or from another
site), a 429 (a throttled login) or a 503 (the console too busy for visitors). The first from
an address in a minute is written at once, with who and what; more from that address in the
same minute are only counted, and one row per address says how many there were once the
minute is over. At most SOURCES addresses a minute get rows of their own; the rest are counted
together under "*".
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
Row = tuple[str, str, str, str]  # actor, action, target, detail: as Audit.append takes them


@dataclass
class _Minute:
    minute: int
    kinds: dict[str, Counter[str]] = field(default_factory=dict)  # by address: kind -> count


class Refusals:
    SOURCES = 1_000

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._now = _Minute(int(clock() // 60))

    def note(self, source: str, kind: str, actor: str, target: str) -> list[Row]:
        """Rows to write now for this refusal: its own if it is the address's first this
        minute, and the counts of a minute that has ended."""
        rows = self.flush()
        kinds = self._now.kinds
        if source not in kinds and len(kinds) >= self.SOURCES:
            source = "*"
        first = source not in kinds
        kinds.setdefault(source, Counter())[kind] += 1
        if first:
            rows.append((actor or "?", "refused", target[:200], f"kind={kind} addr={source}"))
        return rows

    def flush(self) -> list[Row]:
        """The counts of the minute just ended, for each address refused more than once."""
        minute = int(self.clock() // 60)
        if minute == self._now.minute:
            return []
        ended, self._now = self._now, _Minute(minute)
        stamp = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(ended.minute * 60))
        rows = []
        for source, kinds in ended.kinds.items():
            total = sum(kinds.values())
            if total > 1:
                detail = ",".join(f"{k}:{n}" for k, n in sorted(kinds.items()))
                what = f"addr={source} minute={stamp} count={total} kinds={detail}"
                rows.append(("?", "refused_repeated", "console", what))
        return rows
