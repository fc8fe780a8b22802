"""`safeguard-agent` for a process under libfaketime (tests/chaos/clock.py).

libfaketime 0.9.10 turns Python's time.sleep (clock_nanosleep on the monotonic clock, to an
absolute deadline) into EINVAL when the monotonic clock is not shifted; a relative select()
waits the same time untouched. Only the test's launcher changes: the agent's code runs as is.
"""

from __future__ import annotations

import select
import sys
import time


def _sleep(seconds: float) -> None:
    select.select([], [], [], max(0.0, seconds))


if __name__ == "__main__":
    time.sleep = _sleep
    from agent.cli import main

    sys.exit(main())
