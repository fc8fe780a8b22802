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
from dataclasses import dataclass, field
from typing import Any

from collector.incidents import escalate
from collector.incidents.config import EngineRules
from collector.incidents.signals import Dropped, Health, Signal, classify
from collector.ingest import Committed
from collector.store import Store, now_ms

log = logging.getLogger(__name__)

Notify = Callable[[int, int], None]  # (incident id, severity)
SUMMARY_CAP = 300


@dataclass
class Candidate:
    id: int
    kind: str
    agent_id: str
    account: str
    first_ms: int
    last_ms: int
    base_severity: int
    severity: int
    category: str
    categories: set[str]
    summary: list[str]
    event_count: int
    notified: bool
    new: bool = False
    escalation: str = ""
    signals: list[Signal] = field(default_factory=list)

    def add(self, s: Signal) -> None:
        self.first_ms = min(self.first_ms, s.observed_ms)
        self.last_ms = max(self.last_ms, s.observed_ms)
        if s.severity > self.base_severity or not self.categories:
            self.base_severity, self.category = max(self.base_severity, s.severity), s.category
        self.categories.add(s.category)
        if s.summary not in self.summary and len("; ".join(self.summary)) < SUMMARY_CAP:
            self.summary.append(s.summary)
        self.event_count += 1
        self.signals.append(s)


class Engine:
    def __init__(self, rules: EngineRules, notify: Notify | None = None) -> None:
        self.rules = rules
        self.notify = notify
        self.last_ms = 0.0  # how long the last commit's work took, for the log and the bench

    # -- the after_commit hook -------------------------------------------------------------
    def on_commit(self, store: Store, committed: Committed) -> None:
        started = time.perf_counter()
        cols = committed.events
        if cols is not None:
            rows = zip(
                cols["agent_id"],
                cols["seq"],
                cols["kind"],
                cols["observed_ms"],
                cols["raw"],
                strict=True,
            )
            self.process(store, rows, notify=True)
        if committed.tampering_agents:
            from collector.incidents import coverage

            coverage.tampering(self, store)
        self.last_ms = (time.perf_counter() - started) * 1000

    def process(
        self, store: Store, rows: Iterable[tuple[str, int, str, int, bytes]], notify: bool
    ) -> list[int]:
        """Classify stored events and write what they make; returns touched candidate ids."""
        signals: list[Signal] = []
        health: dict[str, Health] = {}
        dropped: list[Dropped] = []
        for agent_id, seq, kind, observed_ms, raw in rows:
            out = classify(self.rules, agent_id, seq, kind, observed_ms, raw)
            if isinstance(out, Signal):
                signals.append(out)
            elif isinstance(out, Health):
                old = health.get(agent_id)
                if old is None or old.heartbeat_ms <= out.heartbeat_ms:
                    health[agent_id] = out
            elif isinstance(out, Dropped):
                dropped.append(out)
        if not (signals or health or dropped):
            return []
        with store.transaction() as con:
            for h in health.values():
                con.execute(
                    "INSERT INTO agent_health VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (agent_id) "
                    "DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms, agent_version = "
                    "excluded.agent_version, policy_version = excluded.policy_version, sensors = "
                    "excluded.sensors, outbox_pending = excluded.outbox_pending",
                    [
                        h.agent_id,
                        h.heartbeat_ms,
                        h.agent_version,
                        h.policy_version,
                        h.sensors,
                        h.outbox_pending,
                    ],
                )
            for d in dropped:
                con.execute(
                    "INSERT INTO agent_health VALUES (?, 0, '', '', '', 0, ?) ON CONFLICT "
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
        open_ = find_open(store, {(s.kind, s.agent_id, s.account) for s in signals},
                          min(s.observed_ms for s in signals) - window)  # fmt: skip
        touched: dict[int, Candidate] = {}
        for s in signals:
            key = (s.kind, s.agent_id, s.account)
            cand = open_.get(key)
            if cand is not None and s.observed_ms - cand.last_ms > window:
                cand = None  # a new episode
            if s.exemption:
                con.execute(
                    "INSERT INTO exempted_matches VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        s.agent_id,
                        s.seq,
                        s.account,
                        s.observed_ms,
                        s.category,
                        s.exemption,
                        cand.id if cand else None,
                    ],
                )
                continue
            if cand is None:
                cand = new_candidate(store, s)
            cand.add(s)
            open_[key] = touched.setdefault(cand.id, cand)
        flush_signals(store, list(touched.values()))
        for cand in touched.values():
            escalate.apply(self.rules, store, cand)
            write(store, cand)
            if (
                notify
                and self.notify
                and cand.severity >= self.rules.notify_at
                and not (cand.notified)
            ):
                con.execute(
                    "UPDATE incidents SET notified_ms = ? WHERE id = ?", [now_ms(), cand.id]
                )
                self.notify(cand.id, cand.severity)
        if touched:
            log.info("incidents.placed signals=%d candidates=%d", len(signals), len(touched))
        return list(touched)


def find_open(
    store: Store, keys: set[tuple[str, str, str]], since_ms: int
) -> dict[tuple[str, str, str], Candidate]:
    """The latest open candidate of each (kind, machine, account) seen since since_ms."""
    rows = store.con.execute(
        "SELECT id, kind, agent_id, account, first_ms, last_ms, base_severity, severity, "
        "category, categories, summary, event_count, notified_ms IS NOT NULL FROM incidents "
        "WHERE status <> 'closed' AND last_ms >= ? "
        "AND list_contains(?, kind || chr(31) || agent_id || chr(31) || account) "
        "ORDER BY last_ms",
        [since_ms, ["\x1f".join(k) for k in keys]],
    ).fetchall()
    return {(r[1], r[2], r[3]): _candidate(r) for r in rows}


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
        bool(row[12]),
    )


def new_candidate(store: Store, s: Signal) -> Candidate:
    now = now_ms()
    row = store.con.execute(
        "INSERT INTO incidents (kind, category, categories, severity, base_severity, agent_id, "
        "account, first_ms, last_ms, created_ms, updated_ms, summary) "
        "VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, '') RETURNING id",
        [
            s.kind,
            s.category,
            s.severity,
            s.severity,
            s.agent_id,
            s.account,
            s.observed_ms,
            s.observed_ms,
            now,
            now,
        ],
    ).fetchone()
    assert row is not None
    return Candidate(
        row[0],
        s.kind,
        s.agent_id,
        s.account,
        s.observed_ms,
        s.observed_ms,
        s.severity,
        s.severity,
        s.category,
        set(),
        [],
        0,
        False,
        new=True,
    )


def write(store: Store, cand: Candidate) -> None:
    con = store.con
    con.execute(
        "UPDATE incidents SET category = ?, categories = ?, severity = ?, base_severity = ?, "
        "escalation = ?, first_ms = ?, last_ms = ?, updated_ms = ?, event_count = ?, "
        "summary = ? WHERE id = ?",
        [
            cand.category,
            ",".join(sorted(cand.categories)),
            cand.severity,
            cand.base_severity,
            cand.escalation,
            cand.first_ms,
            cand.last_ms,
            now_ms(),
            cand.event_count,
            "; ".join(cand.summary),
            cand.id,
        ],
    )


def flush_signals(store: Store, cands: list[Candidate], chunk: int = 400) -> None:
    """Insert the candidates' new signals, a few hundred rows per statement."""
    rows = [
        (c.id, s.agent_id, s.seq, s.account, s.observed_ms, s.source, s.category, s.severity)
        for c in cands
        for s in c.signals
    ]
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(part))
        store.con.execute(
            "INSERT INTO incident_signals (incident_id, agent_id, seq, account, observed_ms, "  # noqa: S608 -- placeholders only
            f"source, category, severity) VALUES {marks}",
            [v for row in part for v in row],
        )
    for c in cands:
        c.signals.clear()
