"""The watchdog hands freed heap back to the OS at each check (agent/selfwatch.py): a
replaced policy's matcher is freed by its last session after the new one was compiled, and
glibc kept the space, so a PC's first start stayed larger than a restart."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit
PROBE = """
from agent.selfwatch import Watchdog, WatchdogLimits

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

class NoSensors:
    def threads(self): return {}
    def helpers(self): return []
    def shed(self, name, reason): return False

dog = Watchdog(WatchdogLimits(), NoSensors(), lambda event: None)
freed, kept = [], []
for _ in range(3000):  # 60 MB of heap in small chunks, each followed by a chunk kept, so
    freed.append(b"x" * 20_000)  # the freed ones are holes glibc does not return by itself
    kept.append(b"y" * 1000)  # (as a matcher's arrays among a service's other objects)
del freed
before = rss()
dog.check()
print(before, rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_a_check_gives_freed_heap_back() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()  # fmt: skip
    before, after = int(out[0]), int(out[1])
    assert before - after >= 40, f"RSS {before} MB before the check, {after} MB after"
