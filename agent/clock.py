"""The agent's clock, corrected by the skew its collector measured.

Each stream's Welcome says how far this PC's clock is from the collector's (the agent's
Hello carries its raw wall clock; collector/intake/clock.py). Where a time decides something, the
agent uses its clock corrected by that skew when the skew is beyond the collector's limit:

- time-limited exemptions (agent/policy.py): a PC two hours fast does not end a lesson's
  exemption two hours early, and a PC a day slow does not keep last week's one alive;
- the time in signed policy and model requests, which the collector refuses when it is more
  than 15 minutes from its own (collector/intake/server.py): a skewed PC still gets its policy.

Within the limit the PC's own clock is used as it is (the measurement carries the network's
transit time). The measurement is kept on disk (agent/shipping_state.py), so a PC restarted
while the collector is out of reach still corrects; the next stream measures it again.
Events keep the PC's own time in `observed_unix_ms` (what the PC saw); the collector flags
and corrects them from its own measurement.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from protos.skew import DEFAULT_LIMIT_MS


class AgentClock:
    def __init__(self, skew_ms: int = 0, limit_ms: int = DEFAULT_LIMIT_MS) -> None:
        self._lock = threading.Lock()
        self.skew_ms = skew_ms  # this PC's clock minus the collector's, as last measured
        self.limit_ms = limit_ms

    @property
    def skewed(self) -> bool:
        return abs(self.skew_ms) > self.limit_ms

    def correction_ms(self) -> int:
        """What to take off the PC's clock to read the collector's."""
        with self._lock:
            return self.skew_ms if abs(self.skew_ms) > self.limit_ms else 0

    def measured(self, skew_ms: int, limit_ms: int) -> None:
        with self._lock:
            self.skew_ms, self.limit_ms = skew_ms, limit_ms

    def unix_ms(self) -> int:
        """The collector's time now, as near as this PC knows it."""
        return time.time_ns() // 1_000_000 - self.correction_ms()

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.unix_ms() / 1000, dt.UTC)

