"""`safeguard-install test-alert`: a technician's check that this PC's alerts reach the collector.

It queues a signed test alert through the installed agent (`safeguard-agent test-alert`, as the
service would put any alert in its outbox), then reads `safeguard-agent status` until the
collector has acknowledged it, for at most --timeout seconds. The running service ships it; this
command only watches. The collector acknowledges events only once it has verified their
signatures against the agent's key and committed them to its database.

The outbox gives an event its seq when it chains it, in the order events were queued. So once
the chain head is known, the test alert's seq is at most head + pending, and an acknowledged seq
that reaches that number covers it (an outbox with nothing waiting covers it too).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from installer import manifest
from installer.context import Context, run_tool
from installer.layout import unit_name
from installer.transaction import InstallError

log = logging.getLogger(__name__)

POLL_S = 0.5
NOT_RUNNING_GRACE_S = 10.0  # a starting agent, or one systemd restarts (RestartSec=5)
EXIT_UNREACHABLE = 3  # as the installer's other commands: worth retrying later
DOCTOR_FIX = (
    "`sudo safeguard-install doctor` checks the address, the firewall, TLS and the clock; the "
    "alert stays in the outbox and ships as soon as the collector can be reached"
)


@dataclass(frozen=True)
class AgentStatus:
    """What `safeguard-agent status` prints, in numbers."""

    running: bool
    pending: int  # queued, not yet chained
    unacked: int  # chained, waiting for the collector
    acked: int | None  # the last seq the collector acknowledged; None before the first contact
    head: int | None  # the last seq chained here; None before the first contact

    @property
    def waiting(self) -> int:
        return self.pending + self.unacked

    def covers(self, seq: int | None) -> bool:
        """Whether the collector has acknowledged every event up to `seq` (None: not known)."""
        if self.acked is None:
            return False
        return self.waiting == 0 or (seq is not None and self.acked >= seq)


def _first_int(text: str | None) -> int | None:
    word = (text or "").split()[:1]
    return int(word[0]) if word and word[0].isdigit() else None


def parse_status(text: str) -> AgentStatus:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return AgentStatus(
        running=fields.get("running") == "yes",
        pending=_first_int(fields.get("pending")) or 0,
        unacked=_first_int(fields.get("unacked")) or 0,
        acked=_first_int(fields.get("acked_seq")),
        head=_first_int(fields.get("chain_head")),
    )


def _tool_error(stderr: str, returncode: int) -> str:
    message = (stderr.strip().splitlines() or [f"exit {returncode}"])[-1]
    return message.removeprefix("safeguard-agent: error: ")


def _status(env: Path, state: Path) -> AgentStatus:
    result = run_tool(env, "safeguard-agent", "status", "--state", state, timeout=60)
    if result.returncode != 0:
        raise InstallError(
            f"cannot read the agent's status: {_tool_error(result.stderr, result.returncode)}",
            fix="`sudo safeguard-install doctor` says what is wrong with this agent",
        )
    return parse_status(result.stdout)


def test_alert(ctx: Context, timeout: float, note: str) -> int:
    layout = ctx.layout
    m = manifest.require(layout, "agent")
    if not layout.is_throwaway and os.geteuid() != 0:
        raise InstallError(
            "the agent's state folder is readable by root only; no test alert was sent",
            fix="run it again with sudo: `sudo safeguard-install test-alert`",
        )
    env = layout.host(layout.current("agent"))
    state = layout.host(str(m.settings["state"]))
    collector = str(m.settings["collector"])
    queued = run_tool(env, "safeguard-agent", "test-alert", "--state", state, "--note", note)
    if queued.returncode != 0:
        raise InstallError(
            f"could not queue a test alert: {_tool_error(queued.stderr, queued.returncode)}",
            fix="`sudo safeguard-install doctor` says what is wrong with this agent",
        )
    event_id = queued.stdout.strip()
    print(
        f"test alert {event_id} queued; waiting up to {timeout:.0f}s for the collector at "
        f"{collector} to acknowledge it",
        flush=True,
    )
    log.info("test_alert.queued event_id=%s", event_id)
    started = time.monotonic()
    seq: int | None = None  # the highest seq the test alert can have, once the head is known
    while True:
        status = _status(env, state)
        if seq is None and status.head is not None:
            seq = status.head + status.pending
        elapsed = time.monotonic() - started
        if status.covers(seq):
            print(
                f"ok: the collector at {collector} acknowledged test alert {event_id} after "
                f"{elapsed:.1f}s: this PC's alerts reach the school's collector"
            )
            return 0
        if elapsed >= timeout or (not _running(ctx, status) and elapsed >= NOT_RUNNING_GRACE_S):
            break
        time.sleep(POLL_S)
    raise _why_not(ctx, m, status, event_id, elapsed)


def _running(ctx: Context, status: AgentStatus) -> bool:
    """The agent holds its lock, or systemd has it starting (a slow PC may take a while)."""
    return status.running or ctx.services.is_active("agent") in ("active", "activating")


def _why_not(
    ctx: Context, m: manifest.Manifest, status: AgentStatus, event_id: str, elapsed: float
) -> InstallError:
    collector, state = m.settings["collector"], m.settings["state"]
    waits = f"test alert {event_id} waits in the agent's outbox"
    if not _running(ctx, status):
        unit = unit_name("agent")
        exe = ctx.layout.bin("agent", "safeguard-agent")
        fix = (
            f"`sudo systemctl start {unit}`; if it stops again, `journalctl -u {unit} -n 50` "
            "says why"
            if ctx.services.live
            else f"{ctx.services.why_not_live()}: start it by hand with "
            f"`sudo {exe} run --state {state}`"
        )
        return InstallError(
            f"the agent service is not running, so nothing ships: {waits}",
            fix=f"{fix}; then run this again",
        )
    if status.acked is None:
        return InstallError(
            f"the agent has not reached the collector at {collector} in {elapsed:.0f}s: {waits}",
            fix=DOCTOR_FIX,
            code=EXIT_UNREACHABLE,
        )
    return InstallError(
        f"the collector at {collector} did not acknowledge the test alert in {elapsed:.0f}s "
        f"({status.waiting} events still waiting to ship): {waits}",
        fix=DOCTOR_FIX,
        code=EXIT_UNREACHABLE,
    )
