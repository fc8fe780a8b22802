"""Admission for requests from visitors who have not logged in: at most RATE a second.

Each costs the console's thread some interpreter time, and the collector's one interpreter is
shared with ingest (issue 16: a flood of them slowed ingest). Paced requests wait their turn
asleep, which costs nothing; when the line is more than MAX_WAIT long, a request is answered
503 after a pause of its own, so a client that floods is held to its pace too. A school's staff
load the login page a few times a day: they never wait. Logged-in requests are not paced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Pacer:
    RATE, MAX_WAIT, REFUSAL_PAUSE = 200.0, 5.0, 1.0

    def __init__(self, rate: float = RATE, clock: Clock = time.monotonic) -> None:
        self.gap, self.clock = 1.0 / rate, clock
        self._next = 0.0
        self.refused = 0
        self.logged = -60.0

    def slot(self) -> float | None:
        """Seconds to wait for this request's turn, or None when the line is too long."""
        now = self.clock()
        start = max(now, self._next)
        if start - now > self.MAX_WAIT:
            self.refused += 1
            if now - self.logged >= 60:  # once a minute at most: a flood must not flood the log
                self.logged = now
                log.warning("console.visitors_refused reason=busy total=%d", self.refused)
            return None
        self._next = start + self.gap
        return start - now

    async def admit(self) -> bool:
        """Wait for a turn; False (after a pause) when there is none to give."""
        wait = self.slot()
        if wait is None:
            await asyncio.sleep(self.REFUSAL_PAUSE)
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        return True
