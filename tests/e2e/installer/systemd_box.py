"""A real systemd, PID 1 of its own namespaces, over a throwaway view of this machine's disk.

Development and CI machines run without systemd as PID 1 (a VM whose init is something else,
a container), so the units the installer writes cannot be started there. A box gives them a
systemd of their own without touching the machine:

- `unshare` makes new PID, mount, UTS, IPC and cgroup namespaces (the network is shared, so the
  box reaches the package index and the test can dial the collector on 127.0.0.1);
- in them, a shell (PID 1 for a moment) mounts an overlay with this machine's `/` as its
  read-only lower layer and a tmpfs as its upper one, gives it its own /proc (with /proc/sys
  read-only), a read-only sysfs, a cgroup2 tree rooted in a cgroup made for the box, a minimal
  /dev, /run and /tmp, pivots into it and becomes `/lib/systemd/systemd` with `container=` set
  (so units meant for real hardware, such as timesyncd, are skipped) and without the
  capabilities to load kernel modules or set the clock;
- systemd boots only `sysinit.target`: no getty, no timers, nothing else this machine enables;
- commands reach the box with `nsenter`, so `systemctl` talks to the box's systemd, `useradd`
  writes the box's /etc/passwd, and everything written lands in the tmpfs.

Nothing outlives the box: its mounts exist only in its mount namespace, every process in it dies
with its PID 1 (`unshare --kill-child`, and `setpriv --pdeathsig` if the test runner itself is
killed), and the cgroup made for it is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SYSTEMD = Path("/lib/systemd/systemd")
TOOLS = ("unshare", "nsenter", "setpriv", "systemctl", "journalctl")
BOOT_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60

# Run by `sh -c` as PID 1 of the new namespaces: $1 the folder to build the root in, $2 a file
# for systemd's console, then folders of this machine to show at the same path inside (the
# checkout under test may sit in /tmp, which the box replaces with its own tmpfs). Mounts made
# here are private to the box's mount namespace.
_INIT = r"""
set -eu
base=$1; console=$2; shift 2
mount -t tmpfs -o mode=0755 sgbox "$base"
mkdir "$base/upper" "$base/work" "$base/root"
mount -t overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" sgbox "$base/root"
r=$base/root
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
for f in sys sysrq-trigger; do
  if [ -e "$r/proc/$f" ]; then
    mount --bind "$r/proc/$f" "$r/proc/$f"; mount -o remount,bind,ro "$r/proc/$f"
  fi
done
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$r/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid dev "$r/dev"
for d in null zero full random urandom tty; do
  touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"
done
mkdir "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
ln -s /proc/self/fd "$r/dev/fd"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$r/dev/shm"
touch "$r/dev/console"; mount --bind "$console" "$r/dev/console"
mount -t tmpfs -o mode=0755,nosuid,nodev run "$r/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$r/tmp"
n=0
for shown in "$@"; do  # copy-on-write, like the rest of the root: writes stay in the box
  n=$((n + 1)); mkdir "$base/upper$n" "$base/work$n"; mkdir -p "$r$shown"
  mount -t overlay -o "lowerdir=$shown,upperdir=$base/upper$n,workdir=$base/work$n" sgbox "$r$shown"
done
cd "$r"; mkdir .oldroot; pivot_root . .oldroot; umount -l /.oldroot; rmdir /.oldroot
exec env -i container=safeguard-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  setpriv --bounding-set -sys_module,-sys_time,-wake_alarm \
  /lib/systemd/systemd --unit=sysinit.target
"""


class BoxError(RuntimeError):
    """The box did not boot or did not go away; the message holds what it printed."""


def cgroup2_home() -> Path:
    """This process's own folder in the cgroup2 tree: /sys/fs/cgroup/unified/... on a hybrid
    machine, /sys/fs/cgroup/... on a unified one. The box's cgroup is made inside it."""
    mount = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] == "cgroup2":
            mount = Path(left.split()[4])
            break
    if mount is None:
        raise BoxError("no cgroup2 hierarchy is mounted here; systemd 252 needs one")
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return mount / line.removeprefix("0::").lstrip("/")
    raise BoxError("this process is in no cgroup2 group")


class SystemdBox:
    """One booted box; see the module docstring. Use `systemd_box()`, which always stops it."""

    def __init__(self, base: Path, shown: tuple[Path, ...] = ()) -> None:
        self.base = base  # an empty folder: the box's tmpfs is mounted here, in its namespace
        self.shown = shown  # this machine's folders, seen at the same path inside
        self.console = base.with_name(base.name + ".console")
        self.cgroup = cgroup2_home() / f"safeguard-test-box-{os.getpid()}-{base.name}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0  # the box's PID 1, as this machine numbers it

    def boot(self) -> None:
        self.console.write_bytes(b"")
        _remove_stale_cgroups(self.cgroup.parent)
        self.cgroup.mkdir()
        argv = [
            "sh",
            "-c",
            'echo $$ > "$1" && shift && exec "$@"',
            "sgbox",
            str(self.cgroup / "cgroup.procs"),
            "setpriv",
            "--pdeathsig",
            "KILL",
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--uts",
            "--ipc",
            "--cgroup",
            "sh",
            "-c",
            _INIT,
            "sgbox-init",
            str(self.base),
            str(self.console),
            *map(str, self.shown),
        ]
        with self.console.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        self.pid = self._wait_for_systemd(deadline)
        while True:
            state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=30)
            if state.stdout.strip() in ("running", "degraded"):
                return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise BoxError(f"systemd did not finish booting ({state.stdout.strip()!r})")
            time.sleep(0.2)

    def _wait_for_systemd(self, deadline: float) -> int:
        """The box's PID 1 once it has become systemd (the shell before it builds the root)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BoxError(f"the box exited {self.proc.returncode}: {self.output()}")
            with contextlib.suppress(OSError, ValueError, IndexError):  # not forked yet
                pid = int(children.read_text().split()[0])
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return pid
            time.sleep(0.05)
        raise BoxError(f"systemd did not start within {BOOT_TIMEOUT_S}s: {self.output()}")

    def output(self) -> str:
        """What the box's first shell and systemd printed (its console)."""
        try:
            return self.console.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def run(
        self,
        *argv: str | Path,
        stdin: str | None = None,
        cwd: str | Path = "/",
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the box (its root, PID namespace and systemd)."""
        command = [
            "nsenter",
            f"--target={self.pid}",
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--cgroup",
            "--",
            "env",  # not nsenter --wd: that opens the folder on this machine, not in the box
            f"--chdir={cwd}",
            *map(str, argv),
        ]
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the box, {' '.join(map(str, argv))} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def systemctl(self, *args: str) -> str:
        return self.run("systemctl", *args, check=False).stdout.strip()

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in properties))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str | None = None) -> str:
        which = ["--unit", unit] if unit else []
        return self.run(
            "journalctl", "--boot", "--no-pager", "--lines=80", *which, check=False
        ).stdout

    def stop(self) -> None:
        """Power the box off (services get their stop signal), or kill it; then check nothing is
        left: no process, no cgroup (its mounts went with its mount namespace)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            if self.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGRTMIN + 4)  # systemd: poweroff
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()  # unshare --kill-child takes PID 1, and so the whole box, with it
                proc.wait(STOP_TIMEOUT_S)
        self._remove_cgroup()
        with contextlib.suppress(OSError):
            self.base.rmdir()
        with contextlib.suppress(OSError):
            self.console.unlink()

    def _remove_cgroup(self) -> None:
        """Remove the box's cgroup. Its processes are dead or dying (the kernel ends a PID
        namespace's processes with its PID 1), so retry briefly while they go."""
        deadline = time.monotonic() + 30
        while not _rmdir_tree(self.cgroup):
            if time.monotonic() > deadline:
                raise BoxError(f"the box's cgroup {self.cgroup} still holds processes")
            time.sleep(0.1)


def _rmdir_tree(cgroup: Path) -> bool:
    """Remove a cgroup and the ones inside it, innermost first (a cgroup is removed with rmdir,
    which fails while it holds a process); True once it is gone."""
    inner = sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for folder in [*inner, cgroup]:
        with contextlib.suppress(OSError):
            folder.rmdir()
    return not cgroup.exists()


def _remove_stale_cgroups(parent: Path) -> None:
    """The empty cgroups of boxes whose test runner was killed outright (SIGKILL ends the box
    through --pdeathsig, but leaves its cgroup folder behind)."""
    for cgroup in parent.glob("safeguard-test-box-*"):
        runner = int(cgroup.name.split("-")[3])
        try:
            os.kill(runner, 0)
        except ProcessLookupError:
            _rmdir_tree(cgroup)
        except PermissionError:
            pass  # alive


@contextlib.contextmanager
def systemd_box(base: Path, shown: tuple[Path, ...] = ()) -> Iterator[SystemdBox]:
    """A booted box whose root is built at `base` (an empty folder), with the folders `shown`
    bound in at the same paths; stopped on the way out, whatever happened inside."""
    box = SystemdBox(base, shown)
    try:
        box.boot()
        yield box
    finally:
        box.stop()
