"""A small tmpfs for a data folder, and a ballast file that fills it: a disk that runs out.

A plain mount (we run as root, here and in CI), undone at teardown. Where mounting is not
permitted, MountRefused says so; the tests turn that into a skip here and a failure in CI.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

BALLAST = ".chaos-ballast"


class MountRefused(Exception):
    """This machine will not let the test mount a tmpfs."""


class Tmpfs:
    def __init__(self, path: Path, size_mb: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise MountRefused(f"cannot mount a {size_mb} MB tmpfs on {path} (the disk-full "
                               f"faults need root or CAP_SYS_ADMIN): {result.stderr.strip()}")
        self.path = path
        self.ballast = path / BALLAST

    def fill(self) -> int:
        """Write a ballast file until the filesystem is full; returns its size in bytes."""
        written = 0
        try:
            fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                return 0  # full already
            raise
        try:
            for chunk in (1 << 20, 1 << 12, 1):  # big steps first, then to the last byte
                block = b"\0" * chunk
                while True:
                    try:
                        done = os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
                    written += done
                    if done < chunk:
                        break
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def unmount(self) -> None:
        """At teardown, after every process using it has stopped (lazily if one has not)."""
        with contextlib.suppress(OSError):
            self.free()
        if subprocess.run(["umount", str(self.path)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
