"""Signals into candidates: grouping, severity, escalation. Runs on the single writer thread.

`Engine.on_commit` is an `Ingestor.after_commit` hook: it sees the columns a commit stored,
decodes only the kinds that matter, and writes candidates in its own transaction. A signal
joins the open candidate of the same kind, machine and account whose last event is within the
grouping window; otherwise it starts a new one. Exempted matches make no candidate but are
recorded (and counted on the candidate they fall in). `rerun` rebuilds every untriaged
candidate from stored events after a rule change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from collector.incidents import escalate
from collector.incidents.candidate import Candidate
from collector.incidents.concerns import concern_of
from collector.incidents.config import EngineRules
from collector.incidents.signals import Dropped, Health, Signal, classify
from collector.incidents.staff_alerts import account_is_staff
from collector.intake.ingest import Committed
from collector.integrity import records
from collector.storage.store import Store, now_ms
from protos import events_pb2

log = logging.getLogger(__name__)

# (incident id, severity[, the severity the DSL was told before, when it rose past it])
Notify = Callable[..., None]


THROUGH_KEY = "engine.events_through_ms"  # events received up to here have been judged
_JUDGED_COLUMNS = ["agent_id", "seq", "kind", "observed_ms", "raw"]


def rows_to_judge(events: pa.Table) -> list[tuple[str, int, str, int, bytes]]:
    """The rows of a commit the engine classifies: those its verifier marked `judge`
    (collector/intake/event_table.py), as Python tuples; the rest never leave Arrow."""
    picked = events.select(_JUDGED_COLUMNS).filter(events.column("judge"))
    columns = [picked.column(c).to_pylist() for c in _JUDGED_COLUMNS]
    return list(zip(*columns, strict=True))


class Engine:
    def __init__(
        self,
        rules: EngineRules,
        notify: Notify | None = None,
        notify_at: int = 5,
        record_key: bytes | None = None,
    ) -> None:
        """record_key: chain each candidate's creation and changes into its record
        (collector/integrity/records.py); None only in tests of the engine alone."""
        self.rules = rules
        self.notify = notify
        self.record_key = record_key
        self.notify_at = notify_at  # a candidate at or above this severity reaches the DSL
        self.last_ms = 0.0  # how long the last commit's work took, for the log and the bench

    # -- the after_commit hook -------------------------------------------------------------
    def on_commit(self, store: Store, committed: Committed) -> None:
        started = time.perf_counter()
        events = committed.events
        if events is not None:
            through_ms = pc.max(events.column("received_ms")).as_py()
            self.process(store, rows_to_judge(events), notify=True, through_ms=through_ms)
        self.last_ms = (time.perf_counter() - started) * 1000

    def process(
        self,
        store: Store,
        rows: Iterable[tuple[str, int, str, int, bytes | events_pb2.Event]],
        notify: bool,
        through_ms: int | None = None,
    ) -> list[int]:
        """Classify stored events and write what they make; returns touched candidate ids.

        `through_ms`: these are every event received up to then; recorded with what they
        make, in the same transaction, so `coverage.catch_up` can finish the work of a
        collector that stopped between storing events and judging them."""
        signals: list[Signal] = []
        health: dict[str, Health] = {}
        dropped: list[Dropped] = []
        # Most events are heartbeats and only each agent's latest one matters: decode just that.
        beats: dict[str, tuple[str, int, str, int, bytes | events_pb2.Event]] = {}
        for row in rows:
            agent_id, seq, kind, observed_ms, raw = row
            if kind == "heartbeat":
                old_beat = beats.get(agent_id)
                if old_beat is None or old_beat[3] <= observed_ms:
                    beats[agent_id] = row
                continue
            out = classify(self.rules, agent_id, seq, kind, observed_ms, raw)
            if isinstance(out, Signal):
                signals.append(out)
            elif isinstance(out, Dropped):
                dropped.append(out)
        for row in beats.values():
            beat = classify(self.rules, *row)
            if isinstance(beat, Health):
                health[beat.agent_id] = beat
        if not (signals or health or dropped or through_ms):
            return []
        with store.transaction() as con:
            if through_ms:
                con.execute(
                    "INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) "
                    "DO UPDATE SET value = excluded.value",
                    [THROUGH_KEY, str(through_ms)],
                )
            if health:
                store.upsert_rows(
                    "agent_health",
                    {
                        "agent_id": [h.agent_id for h in health.values()],
                        "heartbeat_ms": [h.heartbeat_ms for h in health.values()],
                        "agent_version": [h.agent_version for h in health.values()],
                        "policy_version": [h.policy_version for h in health.values()],
                        "sensors": [h.sensors for h in health.values()],
                        "outbox_pending": [h.outbox_pending for h in health.values()],
                    },
                    key="agent_id",
                )
                # A heartbeat without a showing (the agent restarted since) keeps the last one.
                shown = [h for h in health.values() if h.notice_shown_ms]
                if shown:
                    store.update_rows(
                        "agent_health",
                        {
                            "agent_id": [h.agent_id for h in shown],
                            "notice_shown_ms": [h.notice_shown_ms for h in shown],
                            "notice_version": [h.notice_version for h in shown],
                        },
                        key="agent_id",
                    )
            for d in dropped:
                con.execute(
                    "INSERT INTO agent_health (agent_id, heartbeat_ms, agent_version, "
                    "policy_version, sensors, outbox_pending, dropped) "
                    "VALUES (?, 0, '', '', '', 0, ?) ON CONFLICT "
                    "(agent_id) DO UPDATE SET dropped = agent_health.dropped + excluded.dropped",
                    [d.agent_id, d.count],
                )
            touched = self.place(store, sorted(signals, key=lambda s: s.observed_ms), notify)
        return touched

    # -- grouping --------------------------------------------------------------------------
    def place(self, store: Store, signals: list[Signal], notify: bool) -> list[int]:
        """Group signals into candidates, escalate, write. Call inside a transaction."""
        con = store.con
        window = self.rules.incidents.group_window_minutes * 60_000
        if not signals:
            return []
        open_ = find_open(store, {_key(s) for s in signals},
                          min(s.observed_ms for s in signals) - window)  # fmt: skip
        touched: list[Candidate] = []  # in the order first touched
        exempted: list[tuple[Signal, Candidate | None]] = []
        for s in signals:
            key = _key(s)
            cand = open_.get(key)
            if cand is not None and s.observed_ms - cand.last_ms > window:
                cand = None  # a new episode
            if s.exemption:
                exempted.append((s, cand))
                continue
            if cand is None:
                cand = new_candidate(s)
            if not cand.signals:
                touched.append(cand)
            cand.add(s)
            open_[key] = cand
        # New candidates get their ids in one query and their rows in one insert: a row-by-row
        # INSERT ... RETURNING per new candidate was 11% of the collector with 1,000 agents.
        fresh = [c for c in touched if c.new]
        reserve_ids(store, fresh)
        record_exempted(store, exempted)
        flush_signals(store, touched)
        for cand in touched:
            escalate.apply(self.rules, store, cand)
        insert(store, fresh)
        write(store, [c for c in touched if not c.new])
        if self.record_key is not None:
            records.append(store, self.record_key, record_entries(touched))
        for cand in touched:
            told = cand.notified_severity
            if notify and self.notify and cand.severity >= max(self.notify_at, told + 1):
                # Told again when it rises past what the DSL was told: "now severity 5".
                con.execute(
                    "UPDATE incidents SET notified_ms = ?, notified_severity = ? WHERE id = ?",
                    [now_ms(), cand.severity, cand.id],
                )
                cand.notified_severity = cand.severity
                # About a member of staff: to the head teacher only (the LADO route).
                staff = {"about_staff": True} if account_is_staff(con, cand.account) else {}
                if told:
                    self.notify(cand.id, cand.severity, told, **staff)
                else:
                    self.notify(cand.id, cand.severity, **staff)
        if touched:
            log.info("incidents.placed signals=%d candidates=%d new=%d", len(signals),
                     len(touched), len(fresh))  # fmt: skip
        return [c.id for c in touched]


Key = tuple[str, str, str, str]  # kind, machine, account, concern


def _key(s: Signal) -> Key:
    return (s.kind, s.agent_id, s.account, concern_of(s.kind, s.category))


def find_open(store: Store, keys: set[Key], since_ms: int) -> dict[Key, Candidate]:
    """The latest open candidate of each (kind, machine, account, concern) seen since since_ms.
    Candidates made before concerns (concern '') take no new signals: see concerns.split."""
    rows = store.con.execute(
        "SELECT id, kind, agent_id, account, first_ms, last_ms, base_severity, severity, "
        "category, categories, summary, event_count, coalesce(notified_severity, 0), "
        "coalesce(concern, '') FROM incidents WHERE status <> 'closed' AND last_ms >= ? "
        "AND list_contains(?, kind || chr(31) || agent_id || chr(31) || account || chr(31) "
        "|| coalesce(concern, '')) ORDER BY last_ms",
        [since_ms, ["\x1f".join(k) for k in keys]],
    ).fetchall()
    return {(r[1], r[2], r[3], r[13]): _candidate(r) for r in rows}


def _candidate(row: tuple[Any, ...]) -> Candidate:
    return Candidate(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        set(filter(None, row[9].split(","))),
        row[10].split("; ") if row[10] else [],
        row[11],
        int(row[12]),
        was=(row[8], row[7]),
        concern=row[13],
    )


def new_candidate(s: Signal) -> Candidate:
    """A candidate that starts with this signal; its id comes from `reserve_ids`."""
    return Candidate(
        0, s.kind, s.agent_id, s.account, s.observed_ms, s.observed_ms, s.severity, s.severity,
        s.category, set(), [], 0, 0, new=True, concern=concern_of(s.kind, s.category),
    )  # fmt: skip


def reserve_ids(store: Store, cands: list[Candidate]) -> None:
    if cands:
        rows = store.con.execute(
            "SELECT nextval('incident_id') FROM range(?)", [len(cands)]
        ).fetchall()
        for cand, (cid,) in zip(cands, sorted(rows), strict=True):
            cand.id = cid


def record_exempted(store: Store, matches: list[tuple[Signal, Candidate | None]]) -> None:
    """Exempted matches, each with the candidate it fell in (if one was open)."""
    if matches:
        signals = [s for s, _ in matches]
        store.append_rows("exempted_matches", {
            **_signal_columns(signals),
            "exemption": [s.exemption for s in signals],
            "incident_id": [c.id if c else None for _, c in matches],
        })  # fmt: skip


def record_entries(touched: list[Candidate]) -> list[records.Entry]:
    """A new candidate's creation, and a stored one's change of category or severity."""
    out = []
    for c in touched:
        if c.new:
            out.append(records.Entry(c.id, "created", {
                "kind": c.kind, "agent_id": c.agent_id, "account": c.account,
                "category": c.category, "severity": c.severity, "status": "new",
                "concern": c.concern}))  # fmt: skip
        elif c.was != (c.category, c.severity):
            out.append(records.Entry(c.id, "changed",
                                     {"category": c.category, "severity": c.severity}))  # fmt: skip
        c.was = (c.category, c.severity)
    return out


def insert(store: Store, cands: list[Candidate]) -> None:
    """The new candidates' rows, in one statement."""
    if not cands:
        return
    now = now_ms()
    store.append_rows("incidents", {
        "id": [c.id for c in cands],
        "kind": [c.kind for c in cands],
        "agent_id": [c.agent_id for c in cands],
        "account": [c.account for c in cands],
        "concern": [c.concern for c in cands],
        "created_ms": [now] * len(cands),
        **_changing_columns(cands, now),
    })  # fmt: skip


def write(store: Store, cands: list[Candidate]) -> None:
    """Update the touched candidates in one statement (one UPDATE each cost ~1 ms)."""
    if cands:
        store.update_rows(
            "incidents",
            {"id": [c.id for c in cands], **_changing_columns(cands, now_ms())},
            key="id",
        )


def _signal_columns(signals: list[Signal]) -> dict[str, list[Any]]:
    return {
        "agent_id": [s.agent_id for s in signals],
        "seq": [s.seq for s in signals],
        "account": [s.account for s in signals],
        "observed_ms": [s.observed_ms for s in signals],
        "category": [s.category for s in signals],
    }


def _changing_columns(cands: list[Candidate], now: int) -> dict[str, list[Any]]:
    return {
        "category": [c.category for c in cands],
        "categories": [",".join(sorted(c.categories)) for c in cands],
        "severity": [c.severity for c in cands],
        "base_severity": [c.base_severity for c in cands],
        "escalation": [c.escalation for c in cands],
        "first_ms": [c.first_ms for c in cands],
        "last_ms": [c.last_ms for c in cands],
        "updated_ms": [now] * len(cands),
        "event_count": [c.event_count for c in cands],
        "summary": ["; ".join(c.summary) for c in cands],
    }


def flush_signals(store: Store, cands: list[Candidate]) -> None:
    """Insert the candidates' new signals in one bulk statement."""
    signals = [s for c in cands for s in c.signals]
    if signals:
        store.append_rows("incident_signals", {
            "incident_id": [c.id for c in cands for _ in c.signals],
            **_signal_columns(signals),
            "source": [s.source for s in signals],
            "severity": [s.severity for s in signals],
        })  # fmt: skip
    for c in cands:
        c.signals.clear()
