"""Handing memory back to the OS after one-off work: freed heap after a peak (compiling a
policy, loading the semantic model), which glibc keeps for reuse otherwise, so the PC's RSS
stays at the peak; and the pages of the service's libraries that only start-up ran."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MADV_PAGEOUT = 21  # linux/mman.h (Linux 5.4+)


def give_back_memory() -> None:
    """``malloc_trim(0)`` on Linux; nothing elsewhere."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def library_folders() -> tuple[str, ...]:
    """Where the agent's installed packages are (its venv's site-packages)."""
    paths = sysconfig.get_paths()
    return tuple(sorted({str(Path(paths[k]).resolve()) + "/" for k in ("purelib", "platlib")}))


def release_library_pages(folders: tuple[str, ...]) -> int:
    """Ask the kernel to drop this process's resident pages of the read-only or executable
    mappings of files under ``folders`` (``madvise(MADV_PAGEOUT)``): the compiled libraries
    of gRPC and cryptography keep the pages their start-up ran (module set-up, TLS, the first
    connection: 18 MB of the service's 20 MB of them, measured), though a running service
    touches a small part again. Those pages are clean copies of the files: the kernel drops
    them, and reads back from the file the few a later call needs. Pages another process
    also maps are left alone (the kernel skips them), and writable mappings are not touched
    (their changed pages would go to swap). Returns the bytes advised; 0 where not Linux or
    the kernel is older than 5.4."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return 0
    madvise = libc.madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    advised = 0
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1] or not fields[5].startswith(folders):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if madvise(start, end - start, MADV_PAGEOUT) != 0:
            return advised  # EINVAL: a kernel without MADV_PAGEOUT; nothing more to do
        advised += end - start
    return advised


class StartupPages:
    """When to release the libraries' start-up pages: once start-up is over (``first_s``
    after the service started: the policy loaded, the first connection made), then every
    ``every_s`` (what a rare path touched since goes again), and ``again`` after a policy
    update: fetching and applying one runs gRPC's and cryptography's rare paths, whose pages
    otherwise stayed until the next ``every_s`` (5.7 MB of the service's PSS, measured)."""

    def __init__(self, first_s: float = 30.0, every_s: float = 1800.0,
                 clock: Callable[[], float] = time.monotonic,
                 release: Callable[[], int] | None = None) -> None:  # fmt: skip
        self._clock = clock
        self._every_s = every_s
        self._due = clock() + first_s
        folders = library_folders()
        self._release = release or (lambda: release_library_pages(folders))

    def again(self, after_s: float = 10.0) -> None:
        """Release them ``after_s`` from now (or sooner, if due sooner already). Called from
        the thread that applied the policy while the watchdog's thread checks: no lock,
        since a ``check`` that overwrites ``_due`` has just released them itself."""
        self._due = min(self._due, self._clock() + after_s)

    def check(self) -> None:
        if self._clock() < self._due:
            return
        self._due = self._clock() + self._every_s
        advised = self._release()
        log.info("memory.library_pages_released advised_mb=%.1f", advised / 2**20)
