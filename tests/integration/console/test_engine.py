"""The incident engine on a real DuckDB store, and notifications to real local servers."""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.incidents import config, coverage
from collector.incidents.engine import Engine
from collector.integrity import audit
from collector.reporting.notify import Notifier, NotifyConfig, message
from collector.storage import retention
from collector.storage.store import Store
from protos import envelope, events_pb2
from tests.integration.console.support import Agent, ConsoleHarness, Hook, keyword, wait_for

pytestmark = pytest.mark.integration
DAY = 86_400_000
MIN = 60_000
T0 = 1_750_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "c.duckdb")
    try:
        yield s
    finally:
        s.close()


def _rows(*events: events_pb2.Event, agent: str = "ag-1") -> list[tuple[str, int, str, int, bytes]]:
    out = []
    for i, ev in enumerate(events, start=1):
        ev.seq = i
        out.append(
            (
                agent,
                i,
                ev.WhichOneof("payload") or "",
                ev.observed_unix_ms,
                envelope.event_bytes(ev),
            )
        )
    return out


def _incidents(store: Store) -> list[tuple[int, int, str, int]]:
    return store.con.execute(
        "SELECT id, severity, category, event_count FROM incidents ORDER BY id"
    ).fetchall()


def test_events_in_the_window_group_and_a_gap_starts_a_new_candidate(store: Store) -> None:
    engine = Engine(config.EngineRules(config.DEFAULT_INCIDENTS))
    engine.process(
        store,
        _rows(
            keyword("bullying", ["a"], at_ms=T0),
            keyword("bullying", ["b"], at_ms=T0 + 10 * MIN),
            keyword("bullying", ["c"], at_ms=T0 + 35 * MIN),  # within 30 min of the last one
            keyword("bullying", ["d"], at_ms=T0 + 120 * MIN),  # a new episode
            keyword("bullying", ["e"], account="pupil.ben", at_ms=T0),  # another pupil
        ),
        notify=False,
    )
    counts = sorted(n for *_, n in _incidents(store))
    assert counts == [1, 1, 3]


def test_grooming_on_two_days_escalates(store: Store) -> None:
    engine = Engine(config.EngineRules(config.DEFAULT_INCIDENTS, config.DEFAULT_RECURRENCES))
    engine.process(store, _rows(keyword("grooming", ["our secret"], score=5, at_ms=T0)), False)
    engine.process(
        store,
        _rows(keyword("grooming", ["dont tell"], score=5, at_ms=T0 + 2 * DAY), agent="ag-2"),
        False,
    )
    (_, first, *_), (_, second, *_) = _incidents(store)
    assert first == 4 and second == 5
    why = store.con.execute("SELECT escalation FROM incidents WHERE id = 2").fetchone()
    assert why and "several days" in why[0]


def test_silent_agents_and_tampering_become_candidates(console: ConsoleHarness) -> None:
    agent = Agent.enrol(console)
    agent.ship(keyword("drugs", ["weed"]))
    runtime = console.running.incidents
    assert runtime is not None
    made = console.with_store(
        lambda s: coverage.silent_agents(
            runtime.engine, s, now=int(time.time() * 1000) + 3 * 3600_000
        )
    )
    assert len(made) == 1
    again = console.with_store(
        lambda s: coverage.silent_agents(
            runtime.engine, s, now=int(time.time() * 1000) + 4 * 3600_000
        )
    )
    assert again == []  # one candidate per silence
    console.with_store(lambda s: s.add_tampering([(agent.agent_id, "fork", "test", 1, 1, 1, b"")]))
    # The after-commit hook handles tampering from ingest; here the record was written directly.
    console.with_store(lambda s: coverage.tampering(runtime.engine, s))
    kinds = {r["kind"] for r in console.op("incidents")["rows"]}
    assert kinds == {"detection", "silent_agent", "tampering"}


def test_rerun_rebuilds_untriaged_candidates_with_new_rules(store: Store) -> None:
    engine = Engine(config.EngineRules(config.DEFAULT_INCIDENTS))
    rows = _rows(
        keyword("gambling", ["bet"], at_ms=T0), keyword("gambling", ["odds"], at_ms=T0 + 5 * MIN)
    )
    store.append_events(
        {
            "agent_id": [r[0] for r in rows],
            "seq": [r[1] for r in rows],
            "event_id": ["a", "b"],
            "kind": [r[2] for r in rows],
            "severity": [3, 3],
            "account": ["pupil.amy"] * 2,
            "observed_ms": [r[3] for r in rows],
            "received_ms": [r[3] for r in rows],
            "raw": [r[4] for r in rows],
            "hash": [b"", b""],
        }
    )
    engine.process(store, rows, False)
    assert [(sev, n) for _, sev, _, n in _incidents(store)] == [(2, 2)]
    stricter = dataclasses.replace(
        config.DEFAULT_INCIDENTS,
        group_window_minutes=1,
        severities=(config.SeverityRule("gambling", 0, 3),),
    )
    result = coverage.rerun(Engine(config.EngineRules(stricter)), store)
    assert result == {"removed": 1, "events": 2, "candidates": 2}
    assert [(sev, n) for _, sev, _, n in _incidents(store)] == [(3, 1), (3, 1)]


def test_retention_purges_old_events_and_logs_it(store: Store, tmp_path: Path) -> None:
    a = audit.Audit(b"k" * 32)
    now = int(time.time() * 1000)
    store.append_events(
        {
            "agent_id": ["ag-1", "ag-1"],
            "seq": [1, 2],
            "event_id": ["a", "b"],
            "kind": ["heartbeat"] * 2,
            "severity": [0, 0],
            "account": ["", ""],
            "observed_ms": [now - 400 * DAY, now],
            "received_ms": [now - 400 * DAY, now],
            "raw": [b"", b""],
            "hash": [b"", b""],
        }
    )
    got = retention.purge(store, a, "dsl", now=now)
    assert got == {"events": 1, "incidents": 0}
    assert store.count_events() == 1
    [entry] = audit.read(store.con)
    assert entry["action"] == "purge" and "events=1" in entry["detail"]
    assert a.verify(store.con).ok
    # The running collector's daily purge: not again within a day of the last, then again.
    assert retention.purge_if_due(store, a, now=now + DAY - 1) is None
    assert retention.purge_if_due(store, a, now=now + DAY) == {"events": 0, "incidents": 0}
    assert audit.read(store.con)[0]["actor"] == "system:retention"  # newest first


def test_a_running_collector_purges_by_itself(console: ConsoleHarness) -> None:
    wait_for(lambda: any(e["action"] == "purge" and e["actor"] == "system:retention"
                         for e in console.with_store(lambda s: audit.read(s.con))))  # fmt: skip


def test_a_severe_candidate_reaches_the_dsl_by_email_and_webhook(store: Store) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    mails: list[object] = []

    class Keep(Message):
        def handle_message(self, message: object) -> None:
            mails.append(message)

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(Keep(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    Hook.received.clear()
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        cfg = NotifyConfig(
            base_url="https://console.school.example",
            email_to=("dsl@school.example",),
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            webhook_url=f"http://127.0.0.1:{hook.server_address[1]}/hook",
        )
        notifier = Notifier(cfg, checkpoint=lambda: "Chain checkpoint: audit:5:3fa9")
        notifier.start()
        engine = Engine(config.EngineRules(config.DEFAULT_INCIDENTS), notify=notifier)
        engine.process(store, _rows(keyword("bullying", ["x"], at_ms=T0)), notify=True)
        engine.process(
            store,
            _rows(
                keyword(
                    "suicide",
                    ["end it all"],
                    account="pupil.dan",
                    context="i want to end it all",
                    at_ms=T0,
                )
            ),
            notify=True,
        )
        wait_for(lambda: len(mails) == 1 and len(Hook.received) == 1)
        notifier.stop()
    finally:
        smtp.stop()
        hook.shutdown()
        hook.server_close()
    mail = mails[0]
    text = str(mail)
    assert "severity 5 incident needs review" in text
    assert "https://console.school.example/incidents/2" in text
    assert "Chain checkpoint: audit:5:3fa9" in text  # a copy of the chains' heads leaves by mail
    for secret in ("pupil.dan", "end it all", "suicide"):
        assert secret not in text and secret not in json.dumps(Hook.received[0])
    assert Hook.received[0]["severity"] == 5


def test_the_notify_threshold_is_the_schools_min_severity(store: Store) -> None:
    told: list[tuple[int, int]] = []
    engine = Engine(config.EngineRules(config.DEFAULT_INCIDENTS),
                    notify=lambda i, s: told.append((i, s)), notify_at=4)  # fmt: skip
    engine.process(store, _rows(keyword("bullying", ["x"], at_ms=T0)), notify=True)  # 2
    engine.process(store, _rows(keyword("self_harm", ["x"], account="pupil.b", at_ms=T0)),
                   notify=True)  # fmt: skip
    assert [s for _, s in told] == [4]  # self-harm is 4: below the old fixed 5, told now


def test_a_candidate_that_rises_past_what_the_dsl_was_told_is_sent_again(store: Store) -> None:
    told: list[tuple[Any, ...]] = []
    engine = Engine(config.EngineRules(config.DEFAULT_INCIDENTS),
                    notify=lambda *args: told.append(args), notify_at=4)  # fmt: skip
    for category, at in (("self_harm", T0), ("self_harm", T0 + 1000), ("suicide", T0 + 2000)):
        engine.process(store, _rows(keyword(category, ["x"], account="pupil.b", at_ms=at)),
                       notify=True)  # fmt: skip
    iid = told[0][0]
    assert told == [(iid, 4), (iid, 5, 4)]  # once at 4, not again at 4, then again at 5
    text = message(NotifyConfig(), iid, 5, 4)[0]
    assert "rose to severity 5 (from 4)" in text


def test_retention_keeps_the_batches_evidence_needs_and_the_evidence_still_verifies(
    console: ConsoleHarness,
) -> None:
    from tests.integration.console.support import Client, heartbeat

    agent = Agent.enrol(console)
    agent.ship(heartbeat())  # a batch of its own: purged when old
    agent.ship(heartbeat(), keyword("bullying", ["loser"], account="pupil.amy"))  # evidence
    old = int(time.time() * 1000) - 400 * DAY
    console.with_store(lambda s: s.con.execute("UPDATE events SET received_ms = ?", [old]))
    purged = console.op("retention", purge=True)["purged"]
    assert purged["events"] == 1  # the lone heartbeat; the evidence's batch-mate stays
    assert console.count(agent.agent_id) == 2
    [row] = console.op("incidents", status="")["rows"]
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.post(f"/incidents/{row['id']}/verify")
    assert "Evidence verified: all 1 events" in page


def test_a_candidate_not_built_from_events_has_nothing_to_verify(store: Store) -> None:
    from collector.accounts import Account
    from collector.incidents.signals import Signal
    from collector.reporting import exports

    engine = Engine(config.EngineRules(config.DEFAULT_INCIDENTS))
    gap = Signal("ag-1", 0, "", T0, "tampering", "tampering", "tampering", 3, "a gap")
    with store.transaction():
        [iid] = engine.place(store, [gap], notify=False)
    who = Account("dana", "Dana Lead", "dsl")
    text = exports.verify_incident(store, audit.Audit(b"k" * 32), who, iid)
    assert text.startswith("No stored events to verify")  # not "seq 0: no longer stored"


def test_catch_up_never_leaves_the_mark_inside_a_millisecond(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector.incidents.engine import THROUGH_KEY

    rows = _rows(*(keyword("bullying", ["x"], account=f"p{n}", at_ms=T0) for n in range(5)))
    received = [T0 + 1, T0 + 1, T0 + 1, T0 + 2, T0 + 2]  # two commits' worth of batches
    store.append_events({
        "agent_id": [r[0] for r in rows], "seq": [r[1] for r in rows],
        "event_id": [f"e{r[1]}" for r in rows], "kind": [r[2] for r in rows],
        "severity": [3] * 5, "account": [f"p{n}" for n in range(5)],
        "observed_ms": [r[3] for r in rows], "received_ms": received,
        "raw": [r[4] for r in rows], "hash": [b""] * 5,
    })  # fmt: skip
    store.con.execute("INSERT INTO settings VALUES (?, ?)", [THROUGH_KEY, str(T0)])
    engine = Engine(config.EngineRules(config.DEFAULT_INCIDENTS))
    marks: list[tuple[int, int | None]] = []
    real = engine.process

    def process(store: Store, rows: Any, notify: bool, through_ms: int | None = None) -> Any:
        rows = list(rows)
        marks.append((len(rows), through_ms))
        return real(store, rows, notify, through_ms)

    monkeypatch.setattr(engine, "process", process)
    monkeypatch.setattr(coverage, "CHUNK", 2)
    assert coverage.catch_up(engine, store) == 5
    # Chunks of two would end inside T0+1 (3 rows): they end where received_ms changes.
    assert marks == [(3, T0 + 1), (2, T0 + 2)]
    assert len(_incidents(store)) == 5


def test_a_policy_file_cannot_be_damaged_into_breaking_the_collector(tmp_path: Path) -> None:
    from collector import policy
    from tests.harness import init_data

    data = init_data(tmp_path / "c")
    data.policy_dir.mkdir(parents=True, exist_ok=True)
    (data.policy_dir / "current.json").write_text("{not json")
    assert policy.current(data) is None and policy.current_version(data) == ""
