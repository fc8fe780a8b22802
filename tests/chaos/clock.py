"""The agent's clock, shifted with libfaketime (Debian package `faketime`) while it runs.

The offset is read from a file on every call (FAKETIME_TIMESTAMP_FILE, FAKETIME_NO_CACHE), so
the test can set the PC's clock right without restarting the agent, as NTP would. The
monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC): libfaketime 0.9.10 shifts it too
by default, and Python's timed waits on it then never return.
"""

from __future__ import annotations

from pathlib import Path


def libfaketime() -> Path | None:
    """The multi-threaded libfaketime the `faketime` command preloads, if installed."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
    return Path(found[0]) if found else None


class Clock:
    def __init__(self, file: Path, lib: Path) -> None:
        self.file, self.lib = file, lib
        self.set("+0")

    def set(self, offset: str) -> None:
        """An offset in libfaketime's form: "+6h", "-3d", "+0" (the right time)."""
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(offset + "\n")
        tmp.replace(self.file)  # never half a line for a reader

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(self.lib),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
