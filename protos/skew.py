"""Clock skew in words, the same on both sides of the wire: the collector measures a PC's
skew from its Hello and sends it back in the Welcome (collector/intake/clock.py, agent/clock.py)."""

from __future__ import annotations

DEFAULT_LIMIT_MS = 5 * 60_000  # beyond this a PC's clock is flagged (console.toml can change it)


def describe(skew_ms: int) -> str:
    """'2 h 5 min ahead', '3 days 4 h behind', '40 s ahead' (skew: the PC minus the collector)."""
    way = "ahead" if skew_ms >= 0 else "behind"
    s = abs(skew_ms) // 1000
    days, rest = divmod(s, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        text = f"{days} day{'s' if days != 1 else ''} {hours} h"
    elif hours:
        text = f"{hours} h {minutes} min"
    elif minutes:
        text = f"{minutes} min {seconds} s"
    else:
        text = f"{seconds} s"
    return f"{text} {way}"
