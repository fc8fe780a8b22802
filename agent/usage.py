"""What the agent's parts cost, measured the way `top` would: CPU per thread and resident memory
per process. The watchdog (agent/selfwatch.py) reads these every check; nothing here decides.

    ThreadCpu.sample(groups)   {"browser": {tid, ...}} ─▶ {"browser": 12.5}  (% of one core since
                               the previous sample; psutil's threads() reads /proc/self/task/*/stat
                               on Linux and the thread times on Windows, once per sample)
    rss(pid)                   resident bytes of a process, None when it is gone or unreadable
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Set

import psutil  # type: ignore[import-untyped,unused-ignore]  # stubs: types-psutil, not in dev yet


class ThreadCpu:
    """CPU per group of threads of this process, as a percentage of one core."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._process = psutil.Process()
        self._clock = clock
        self._last: dict[int, float] = {}  # thread id -> CPU seconds at the previous sample
        self._at: float | None = None

    def sample(self, groups: Mapping[str, Set[int]]) -> dict[str, float]:
        """Each group's CPU since the previous call (the first call only sets the baseline,
        and gives 0). A thread first seen now counts its whole life: it began since."""
        now = self._clock()
        times = {t.id: t.user_time + t.system_time for t in self._process.threads()}
        wall = None if self._at is None else now - self._at
        first = self._at is None
        self._at = now
        result: dict[str, float] = {}
        for name, tids in groups.items():
            used = sum(times[t] - self._last.get(t, 0.0) for t in tids if t in times)
            result[name] = 0.0 if first or not wall else max(0.0, used) / wall * 100.0
        self._last = times
        return result


def rss(pid: int) -> int | None:
    """Resident memory of a process in bytes; None when it has exited or cannot be read."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None
