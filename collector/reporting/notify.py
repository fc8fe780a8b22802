"""Telling the DSL at once that a severe candidate is waiting: email (SMTP) and/or a webhook.

The message says only how severe it is and where to look: "A severity 5 incident needs review"
and a link to the console. No pupil name, machine, term or site travels by email or webhook;
the DSL reads those after logging in. Sending happens on its own thread, so a slow mail server
never holds up the writer. The same channel carries the collector's own alarms (it cannot
write its database, and when it can again: collector/storage/storage_health.py), whatever their
severity threshold, since a collector that stores nothing hides every incident.

Configured in DATA/console.toml:

    [notify]
    min_severity = 5
    base_url = "https://safeguard.school.internal:8080"
    email_to = ["dsl@school.example"]
    email_from = "safeguard@school.example"
    smtp_host = "mail.school.example"
    smtp_port = 587
    smtp_starttls = true
    smtp_user = "safeguard"
    smtp_password_file = "/etc/safeguard/smtp-password"
    webhook_url = "https://chat.school.example/hooks/dsl"
    head_email_to = ["head@school.example"]

A candidate about a member of staff (collector/incidents/staff_alerts.py: the LADO route) is
told to the head teacher only: by email to `head_email_to`, never to `email_to` or the webhook,
which reach the whole safeguarding team. Without `head_email_to` it is not sent at all (logged
`notify.staff_alert_not_sent`); the head sees it on the console's Today page.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import smtplib
import ssl
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotifyConfig:
    min_severity: int = 5
    base_url: str = "http://127.0.0.1:8080"
    email_to: tuple[str, ...] = ()
    email_from: str = "safeguard@localhost"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password_file: str = ""
    webhook_url: str = ""
    head_email_to: tuple[str, ...] = ()  # alerts about staff go here only (the LADO route)
    timeout_s: float = 20.0

    @classmethod
    def from_table(cls, t: dict[str, Any]) -> NotifyConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(t) - known
        if unknown:
            raise ValueError(f"[notify]: unknown keys {', '.join(sorted(unknown))}")
        for key in ("email_to", "head_email_to"):
            if key in t:
                t = {**t, key: tuple(t[key])}
        return cls(**t)

    @property
    def enabled(self) -> bool:
        return bool((self.smtp_host and self.email_to) or self.webhook_url)


def message(
    cfg: NotifyConfig, incident_id: int, severity: int, previous: int = 0
) -> tuple[str, str]:
    """Subject and body: severity and a link, nothing else. `previous`: the severity the DSL
    was told before, for a candidate that has since risen."""
    link = f"{cfg.base_url.rstrip('/')}/incidents/{incident_id}"
    if previous:
        subject = f"Safeguarding: an incident rose to severity {severity} (from {previous})"
        first = f"An incident you were told of at severity {previous} is now severity {severity}."
    else:
        subject = f"Safeguarding: a severity {severity} incident needs review"
        first = f"A severity {severity} incident needs review."
    body = (
        f"{first}\n\n{link}\n\n"
        "Log in to the safeguarding console to see it. This message holds no details on purpose.\n"
    )
    return subject, body


@dataclass(frozen=True)
class Notice:
    subject: str
    body: str
    link: str
    severity: int  # 0: the collector's own alarm, not an incident
    what: str  # for the log: "incident=12" or "storage"
    to: tuple[str, ...] | None = None  # email recipients instead of email_to; no webhook then


def incident_notice(
    cfg: NotifyConfig, incident_id: int, severity: int, previous: int = 0
) -> Notice:
    subject, body = message(cfg, incident_id, severity, previous)
    link = f"{cfg.base_url.rstrip('/')}/incidents/{incident_id}"
    return Notice(subject, body, link, severity, f"incident={incident_id}")


class Notifier:
    def __init__(
        self, cfg: NotifyConfig, checkpoint: Callable[[], str | None] | None = None
    ) -> None:
        """checkpoint: the chains' last signed checkpoint line (collector/integrity/anchors.py),
        carried in every email so a copy of the heads leaves the host with each notice."""
        self.cfg = cfg
        self._checkpoint = checkpoint
        self._q: queue.SimpleQueue[Notice | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        if self.cfg.enabled or (self.cfg.smtp_host and self.cfg.head_email_to):
            self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join(self.cfg.timeout_s * 2)

    def __call__(
        self, incident_id: int, severity: int, previous: int = 0, about_staff: bool = False
    ) -> None:
        """Queue a notice (from the writer thread); returns at once. `about_staff`: to the
        head teacher only (`head_email_to`), or to no one when that is not set."""
        if severity < self.cfg.min_severity:
            return
        notice = incident_notice(self.cfg, incident_id, severity, previous)
        if about_staff:
            if not (self.cfg.smtp_host and self.cfg.head_email_to):
                log.warning("notify.staff_alert_not_sent incident=%d reason=no_head_email_to",
                            incident_id)  # fmt: skip
                return
            notice = dataclasses.replace(notice, to=self.cfg.head_email_to)
        elif not self.cfg.enabled:
            return
        self._q.put(notice)

    def alarm(self, subject: str, body: str) -> None:
        """The collector's own alarm (no pupil detail in it), sent whatever min_severity is."""
        if self.cfg.enabled:
            link = self.cfg.base_url.rstrip("/") + "/"
            self._q.put(Notice(subject, f"{body}\n\n{link}\n", link, 0, "storage"))

    def _run(self) -> None:
        while (notice := self._q.get()) is not None:
            for name, send in (("email", self._email), ("webhook", self._webhook)):
                try:
                    if send(notice):
                        self.sent += 1
                        log.info("notify.sent via=%s %s", name, notice.what)
                except (OSError, smtplib.SMTPException) as exc:
                    self.failed += 1
                    log.warning("notify.failed via=%s %s error=%s", name, notice.what,
                                type(exc).__name__)  # fmt: skip

    def _email(self, notice: Notice) -> bool:
        cfg = self.cfg
        to = cfg.email_to if notice.to is None else notice.to
        if not (cfg.smtp_host and to):
            return False
        msg = EmailMessage()
        msg["Subject"], msg["From"] = notice.subject, cfg.email_from
        msg["To"] = ", ".join(to)
        line = self._checkpoint() if self._checkpoint else None
        msg.set_content(notice.body + (f"\n{line}\n" if line else ""))
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_s) as smtp:
            if cfg.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.smtp_user:
                password = Path(cfg.smtp_password_file).read_text().strip()
                smtp.login(cfg.smtp_user, password)
            smtp.send_message(msg)
        return True

    def _webhook(self, notice: Notice) -> bool:
        if not self.cfg.webhook_url or notice.to is not None:
            return False  # the webhook reaches the whole team: never an alert about staff
        payload = {"text": f"{notice.subject}: {notice.link}", "severity": notice.severity,
                   "link": notice.link}  # fmt: skip
        if not self.cfg.webhook_url.startswith(("https://", "http://")):
            raise OSError("webhook_url must be http(s)")
        req = urllib.request.Request(  # noqa: S310 -- scheme checked above
            self.cfg.webhook_url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:  # noqa: S310 -- scheme checked above
            return bool(200 <= resp.status < 300)
