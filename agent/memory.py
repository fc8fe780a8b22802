"""Handing freed heap back to the OS after a one-off peak (compiling a policy, loading the
semantic model): glibc keeps it for reuse otherwise, and the PC's RSS stays at the peak."""

from __future__ import annotations

import contextlib
import ctypes
import sys


def give_back_memory() -> None:
    """``malloc_trim(0)`` on Linux; nothing elsewhere."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
