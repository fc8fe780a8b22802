"""The service hands back the pages of its libraries that only start-up ran (agent/memory.py):
the kernel drops a read-only file mapping's resident pages and reads them back on use."""

from __future__ import annotations

import mmap
import os
import sys
import time
from pathlib import Path

import pytest

from agent.memory import StartupPages, release_library_pages
from agent.sensors import HelperProcess

pytestmark = pytest.mark.unit


def _resident_kb(path: Path) -> int:
    """Rss of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            inside = len(head) == 6 and head[5] == str(path)
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_a_read_only_mapping_under_the_folders_leaves_memory_and_reads_back(
    tmp_path: Path,
) -> None:
    lib = tmp_path / "site-packages" / "lib.so"
    lib.parent.mkdir()
    data = os.urandom(8 << 20)
    with lib.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())  # clean pages: the kernel may drop them without writing
    with lib.open("rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
    try:
        assert sum(mapped[i] for i in range(0, len(data), 4096)) >= 0  # touch every page
        assert _resident_kb(lib) >= 7 << 10
        deadline = time.monotonic() + 60  # pages still in a CPU's LRU batch wait their turn
        while _resident_kb(lib) > 1 << 10:
            assert release_library_pages((str(lib.parent) + "/",)) >= 8 << 20
            assert time.monotonic() < deadline, f"still {_resident_kb(lib)} kB resident"
            time.sleep(0.2)
        assert mapped[:] == data  # read back from the file
    finally:
        mapped.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_other_folders_and_writable_mappings_stay(tmp_path: Path) -> None:
    lib = tmp_path / "elsewhere.so"
    lib.write_bytes(os.urandom(1 << 20))
    with lib.open("r+b") as fh:
        mapped = mmap.mmap(fh.fileno(), 0)  # writable, shared
    try:
        mapped[0] = 1
        assert sum(mapped[i] for i in range(0, len(mapped), 4096)) >= 0
        before = _resident_kb(lib)
        assert release_library_pages((str(tmp_path / "site-packages") + "/",)) == 0
        assert release_library_pages((str(tmp_path) + "/",)) == 0  # writable: left alone
        assert _resident_kb(lib) == before
    finally:
        mapped.close()


class Timed:
    """StartupPages started at 100 s on a clock the test moves; ``calls``: when it released."""

    def __init__(self) -> None:
        self.now = 100.0
        self.calls: list[float] = []
        self.pages = StartupPages(first_s=30, every_s=1800, clock=lambda: self.now,
                                  release=self._release)  # fmt: skip

    def _release(self) -> int:
        self.calls.append(self.now)
        return 0

    def checks_at(self, *times: float) -> list[float]:
        for t in times:
            self.now = t
            self.pages.check()
        return self.calls


def test_released_once_start_up_is_over_and_then_every_half_hour() -> None:
    assert Timed().checks_at(100, 120, 129.9, 130, 140, 1929.9, 1930, 1931) == [130, 1930]


def test_released_again_soon_after_a_policy_update() -> None:
    timed = Timed()
    timed.checks_at(130, 500)
    timed.pages.again(after_s=10)  # at 500: a policy was applied
    assert timed.checks_at(509.9, 510, 520, 2309.9, 2310) == [130, 510, 2310]
    timed.now = 2311
    timed.pages.again(after_s=5000)  # never later than already due
    assert timed.checks_at(4110) == [130, 510, 2310, 4110]


def test_the_watchdog_releases_them_at_its_checks() -> None:
    from agent.selfwatch import Watchdog, WatchdogLimits

    class NoSensors:
        def threads(self) -> dict[str, set[int]]:
            return {}

        def helpers(self) -> list[HelperProcess]:
            return []

        def shed(self, name: str, reason: str) -> bool:
            return False

    now, calls = [0.0], []
    pages = StartupPages(first_s=30, clock=lambda: now[0], release=lambda: calls.append(1) or 0)
    dog = Watchdog(WatchdogLimits(), NoSensors(), lambda event: None, pages=pages)
    dog.check()
    now[0] = 31
    dog.check()
    assert calls == [1]
    now[0] = 100
    dog.policy_applied()  # the service calls it for every policy it applies
    now[0] = 109
    dog.check()
    assert calls == [1]
    now[0] = 110
    dog.check()
    assert calls == [1, 1]
