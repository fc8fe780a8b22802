"""The checks `doctor` runs, each returning a `Check` that says what to do when it fails.

Network: a TCP connect, then a TLS handshake with the standard library (its errors name the
cause: refused, unknown CA, wrong name, a clock outside the certificate), then a gRPC channel
over TLS from the role's own Python (probe.py), as the agent dials.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PROBE = Path(__file__).with_name("probe.py")
EARLIEST_SANE = 1_735_689_600  # 2025-01-01: a clock before this release is wrong


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "FAIL", "warn" (works, but look), "unknown" (cannot tell here)
    detail: str
    fix: str = ""
    needs_root: bool = False  # "unknown" because only root can read what it checks

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "FAIL", detail, fix)


SUDO_FIX = "run it again with sudo: the private files of what is installed are for root to read"


def needs_root(name: str, path: Path, detail: str = "") -> Check:
    """A check this user may not make: nothing is known to be wrong, and sudo would tell."""
    detail = detail or f"cannot read {path} without root"
    return Check(name, "unknown", detail, SUDO_FIX, needs_root=True)


def denied(path: Path) -> bool:
    """Whether this user may not look at `path` (e.g. inside a 0700 folder of root's)."""
    try:
        path.stat()
    except PermissionError:
        return True
    except OSError:
        return False
    return not os.access(path, os.R_OK)


def tls(name: str, host: str, port: int, ca: Path, tls_name: str) -> Check:
    """TCP, then a TLS handshake that trusts only the school CA and checks `tls_name`."""
    try:
        raw = socket.create_connection((host, port), timeout=5)
    except OSError as exc:
        return fail(
            name,
            f"cannot connect to {host}:{port}: {exc.strerror or exc}",
            "start the collector, check the address and that the firewall lets this "
            f"PC in on port {port}",
        )
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])  # what gRPC speaks
    try:
        with raw, context.wrap_socket(raw, server_hostname=tls_name) as conn:
            conn.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message or str(exc)
        if "not yet valid" in why or "expired" in why:
            return fail(
                name,
                f"TLS: {why}",
                "this PC's clock is wrong: set it (or fix NTP, "
                "`timedatectl set-ntp true`) and check again",
            )
        if "mismatch" in why or "doesn't match" in why:
            return fail(
                name,
                f"TLS: the collector's certificate does not name {tls_name!r}",
                "dial the collector by a name its certificate holds (collector init "
                "--name), or re-run `safeguard-collector init` with this name",
            )
        return fail(
            name,
            f"TLS: {why}",
            "the agent was given another school's CA, or the "
            "collector was re-initialised: reinstall the agent with the current ca.pem",
        )
    except (OSError, ssl.SSLError) as exc:
        return fail(
            name,
            f"TLS handshake with {host}:{port} failed: {exc}",
            "check that the port is the collector's gRPC port, not the console's",
        )
    return ok(name, f"TLS to {host}:{port} verified with the school CA as {tls_name}")


def grpc_probe(
    name: str, python: Path, target: str, ca: Path, tls_name: str
) -> tuple[Check, dict[str, object]]:
    """A gRPC channel over TLS from the role's Python; also returns the CA's validity window."""
    try:
        result = subprocess.run(
            [str(python), str(PROBE), target, str(ca), tls_name],
            capture_output=True,
            text=True,
            timeout=60,
        )
        answer: dict[str, object] = json.loads(result.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return Check(name, "unknown", f"the gRPC probe did not run: {exc}"), {}
    if answer.get("grpc") == "ok":
        return ok(name, f"gRPC channel over TLS to {target} is ready"), answer
    return fail(name, str(answer.get("grpc")), "see the TLS check above for the cause"), answer


def clock(ca_window: dict[str, object], live: bool) -> Check:
    now = time.time()
    if now < EARLIEST_SANE:
        return fail(
            "clock",
            time.strftime("this PC's clock says %Y-%m-%d", time.gmtime(now)),
            "set the date and time (`timedatectl set-ntp true`)",
        )
    before, after = ca_window.get("ca_not_before"), ca_window.get("ca_not_after")
    if isinstance(before, float) and isinstance(after, float) and not before <= now <= after:
        return fail(
            "clock",
            "the clock is outside the school CA's validity",
            "set the date and time; if it is right, the CA has expired: re-initialise",
        )
    if live and shutil.which("timedatectl"):
        synced = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        if synced == "no":
            return Check(
                "clock",
                "warn",
                "the clock is not synchronised by NTP",
                "`timedatectl set-ntp true`; a drifting clock muddles incident times",
            )
    return ok(
        "clock", time.strftime("%Y-%m-%d %H:%M:%S UTC, within the CA's validity", time.gmtime(now))
    )


def private(name: str, path: Path, mode: int, uid: int | None) -> Check:
    try:
        st = path.stat()
    except PermissionError:
        return needs_root(name, path)
    except OSError as exc:
        return fail(name, f"{path}: {exc.strerror}", "reinstall, or restore it from a backup")
    have = stat.S_IMODE(st.st_mode)
    if have & ~mode:
        return fail(
            name, f"{path} is {have:04o}, more open than {mode:04o}", f"chmod {mode:04o} {path}"
        )
    if uid is not None and os.geteuid() == 0 and st.st_uid != uid:
        return fail(
            name, f"{path} is owned by uid {st.st_uid}, not {uid}", f"chown -R {uid} {path}"
        )
    return ok(name, f"{path} is {have:04o}")


def lock_held(path: Path) -> bool | None:
    """Whether a process holds flock on `path` (the agent's run.lock while it runs); None when
    this user may not open it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except PermissionError:
        return None
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def socket_answers(path: Path) -> bool | None:
    """Whether a process listens on the Unix socket (the collector's admin.sock while it runs);
    None when this user may not reach it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(str(path))
        except PermissionError:
            return None
        except OSError:
            return False
    return True
