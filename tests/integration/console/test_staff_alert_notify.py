"""Notices of a candidate about a member of staff go to the head teacher only (the LADO route):
by email to `head_email_to`, never to the team's `email_to` or webhook; without a head's
address the notice is not sent. Real DuckDB, a real SMTP server and webhook on loopback."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

import pytest

from collector.incidents import config
from collector.incidents.engine import Engine
from collector.reporting.notify import Notifier, NotifyConfig
from collector.storage.store import Store
from protos import envelope, events_pb2
from tests.integration.console.support import Hook, keyword, wait_for

pytestmark = pytest.mark.integration
T0 = 1_750_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "c.duckdb")
    s.con.execute("INSERT INTO roster VALUES ('staff.sam', 'Sam', 'Teach', '', '', '', true, "
                  "0, 0, NULL), ('pupil.amy', 'Amy', 'Lee', '6', '6C', '', false, 0, 0, NULL)")
    try:
        yield s
    finally:
        s.close()


def _row(ev: events_pb2.Event, seq: int) -> tuple[str, int, str, int, bytes]:
    ev.seq = seq
    return ("ag-1", seq, "keyword", ev.observed_unix_ms, envelope.event_bytes(ev))


@pytest.fixture
def mailbox() -> Iterator[tuple[list[EmailMessage], int]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    mails: list[EmailMessage] = []

    class Keep(Message):
        def handle_message(self, message: EmailMessage) -> None:
            mails.append(message)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(Keep(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        yield mails, port
    finally:
        smtp.stop()


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received.clear()
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{hook.server_address[1]}/hook"
    finally:
        hook.shutdown()
        hook.server_close()


def _run(store: Store, cfg: NotifyConfig, until: Any) -> None:
    notifier = Notifier(cfg)
    notifier.start()
    engine = Engine(config.EngineRules(config.DEFAULT_INCIDENTS), notify=notifier, notify_at=4)
    engine.process(store, [_row(keyword("illegal", ["x"], account="staff.sam",
                                        at_ms=T0), 1),
                           _row(keyword("suicide", ["end it all"], at_ms=T0), 2)],
                   notify=True)  # fmt: skip
    wait_for(until)
    notifier.stop()


def test_an_alert_about_staff_is_mailed_to_the_head_only(
    store: Store, mailbox: tuple[list[EmailMessage], int], webhook: str
) -> None:
    mails, port = mailbox
    cfg = NotifyConfig(email_to=("dsl@school.example", "deputy@school.example"),
                       head_email_to=("head@school.example",), smtp_host="127.0.0.1",
                       smtp_port=port, webhook_url=webhook)  # fmt: skip
    _run(store, cfg, lambda: len(mails) == 2 and len(Hook.received) == 1)
    staff_id, pupil_id = (r[0] for r in store.con.execute(
        "SELECT id FROM incidents ORDER BY account DESC").fetchall())  # fmt: skip
    by_to = {m["To"]: str(m) for m in mails}
    assert set(by_to) == {"head@school.example", "dsl@school.example, deputy@school.example"}
    assert f"/incidents/{staff_id}" in by_to["head@school.example"]
    assert f"/incidents/{staff_id}" not in by_to["dsl@school.example, deputy@school.example"]
    assert [h["link"].rsplit("/", 1)[1] for h in Hook.received] == [str(pupil_id)]


def test_without_a_heads_address_an_alert_about_staff_is_not_sent_to_the_team(
    store: Store, mailbox: tuple[list[EmailMessage], int], webhook: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    mails, port = mailbox
    cfg = NotifyConfig(email_to=("dsl@school.example",), smtp_host="127.0.0.1", smtp_port=port,
                       webhook_url=webhook)  # fmt: skip
    _run(store, cfg, lambda: len(mails) == 1 and len(Hook.received) == 1)
    (staff_id,) = store.con.execute(
        "SELECT id FROM incidents WHERE account = 'staff.sam'").fetchone() or (0,)  # fmt: skip
    assert f"/incidents/{staff_id}" not in str(mails[0])
    assert not any(h["link"].endswith(f"/{staff_id}") for h in Hook.received)
    assert f"notify.staff_alert_not_sent incident={staff_id}" in caplog.text
