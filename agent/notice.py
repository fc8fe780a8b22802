"""The monitoring notice pupils see at login: what the service tells each helper to show, and
the record of when a session on this PC last showed it (for the heartbeat).

    service (policy in force) ── ["notice", text, version] ──▶ helper (agent/helper.py)
    helper ── ["n", "shown", version, age_ms] ──▶ broker ──▶ NoticeLog ──▶ Heartbeat

The text comes from the live signed policy (`policy.toml`'s `notice`), so what pupils are told
is what the agent enforces; a policy with no text gets DEFAULT_NOTICE. The time is the
service's corrected clock (agent/clock.py) less the age the helper reports: a helper that
reconnects (the service restarted) reports the notice it showed at login again, with its age,
so the heartbeat keeps the login's time. The age is capped at the helper process's own age:
no session can claim a showing from before it started.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil  # type: ignore[import-untyped,unused-ignore]  # stubs in dev extras only

if TYPE_CHECKING:
    from agent.policy import ActivePolicy

log = logging.getLogger(__name__)

DEFAULT_NOTICE = (
    "This computer is monitored to help keep pupils safe online. Ask your teacher if you "
    "have questions."
)
MAX_TEXT = 2000  # characters: a notice is a few sentences; a longer one is cut
MAX_VERSION = 40


def notice_text(policy_notice: str) -> str:
    """The text to show: the policy's, or the default sentence when it has none."""
    text = " ".join(policy_notice.split())
    return text[:MAX_TEXT] if text else DEFAULT_NOTICE


@dataclass(frozen=True)
class Showing:
    shown_unix_ms: int
    version: str
    account: str


class NoticeLog:
    """The latest showing of the notice on this PC, across every desktop session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Showing | None = None

    def record(self, showing: Showing) -> None:
        with self._lock:
            if self._latest is None or showing.shown_unix_ms >= self._latest.shown_unix_ms:
                self._latest = showing
        log.info("notice.shown account=%s version=%s shown_unix_ms=%d", showing.account,
                 showing.version, showing.shown_unix_ms)  # fmt: skip

    def latest(self) -> Showing | None:
        with self._lock:
            return self._latest


def offer(active: ActivePolicy) -> list[object]:
    """The message that asks a helper to show the notice of the policy in force."""
    return ["notice", notice_text(active.policy.notice), str(active.version)]


def received(message: list[object], account: str, pid: int, now_unix_ms: int) -> Showing | None:
    """What a helper's ["n", ...] message says: a showing to record, or None (a dismissal or
    a failure to show, logged here). Anything malformed is ignored: a notice report must never
    end the session's keyboard capture."""
    what = message[1] if len(message) > 1 else ""
    detail = str(message[2])[:MAX_VERSION] if len(message) > 2 else ""
    if what == "shown":
        age = message[3] if len(message) > 3 else 0
        age_ms = age if isinstance(age, int) and not isinstance(age, bool) else 0
        age_ms = max(0, min(age_ms, _process_age_ms(pid)))
        return Showing(now_unix_ms - age_ms, detail, account)
    if what in ("ok", "closed"):
        log.info("notice.dismissed account=%s version=%s how=%s", account, detail, what)
    elif what == "failed":
        log.warning("notice.not_shown account=%s reason=%s", account, str(message[2])[:200]
                    if len(message) > 2 else "")  # fmt: skip
    return None


def _process_age_ms(pid: int) -> int:
    """How long the helper has been running: no older showing can be its own."""
    try:
        started = float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0
    return max(0, int((time.time() - started) * 1000))
