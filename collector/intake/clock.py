"""A PC's clock against the collector's, measured once per stream.

The agent puts its wall clock in Hello as it sends it; the collector reads its own as the
Hello arrives. The difference is the PC's skew (positive: the PC is ahead), give or take the
network's transit time. It is not worked out from events' observed times: an event a PC
recorded offline days ago and ships now is late, not skewed.

One measurement per stream, not per batch: a batch's signed bytes must stay the same when it
is sent again (protos/envelope.py), the Welcome can carry the measurement back to the agent,
and a stream that outlives an NTP correction is measured again when it reconnects.

A skew beyond the limit (`clock_skew_minutes` in console.toml, 5 by default) is flagged on
every event stored from that stream (events.clock_skew_ms) and on the agent's record
(agents.clock_skew_ms, clock_measured_ms), where the console counts the agent as degraded.
"""

from __future__ import annotations

from dataclasses import dataclass

from protos.skew import DEFAULT_LIMIT_MS, describe

__all__ = ["DEFAULT_LIMIT_MS", "SessionClock", "describe", "measure", "skewed"]


@dataclass(frozen=True)
class SessionClock:
    skew_ms: int | None  # None: the Hello carried no clock (an older agent)
    measured_ms: int  # the collector's clock when it read the Hello
    limit_ms: int = DEFAULT_LIMIT_MS

    @property
    def flag(self) -> int | None:
        """The skew to flag this stream's events with, or None when within the limit."""
        return self.skew_ms if skewed(self.skew_ms, self.limit_ms) else None


def measure(agent_unix_ms: int, collector_ms: int, limit_ms: int) -> SessionClock:
    """The skew of a Hello that said `agent_unix_ms` (0: not said), read at `collector_ms`."""
    skew = agent_unix_ms - collector_ms if agent_unix_ms > 0 else None
    return SessionClock(skew, collector_ms, limit_ms)


def skewed(skew_ms: int | None, limit_ms: int) -> bool:
    return skew_ms is not None and abs(skew_ms) > limit_ms

