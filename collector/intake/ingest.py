"""The single writer: verified batches in, one DuckDB transaction per group, acks out.

Verifier processes check each batch on its own terms and the streams hand it here, with its
rows already in Arrow columns (collector/intake/verifiers.py). One thread owns the Store,
takes every batch queued since its last commit, places each against the stored chain, writes
them all in one transaction (one Arrow table per commit, not row by row) and only then answers
each waiting stream. Anything else that needs the database (enrolment, tokens, admin queries)
runs on the same thread, so DuckDB only ever sees one writer.

What a commit stored is judged (the incident engine, `after_commit`) on a second thread with
its own connection, while the writer goes on with the next group: DuckDB's commit and the
engine's Python overlap. The engine writes only its own tables. A call (enrolment, a DSL's
triage, the retention purge) waits until every commit before it has been judged, and nothing
is judged while it runs, so a call sees what the engine made of every acknowledged batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from collector.intake import event_table
from collector.intake.clock import SessionClock
from collector.integrity import verify
from collector.integrity.verify import VerifiedBatch
from collector.storage.storage_health import StorageHealth
from collector.storage.store import AgentRecord, Store, now_ms
from protos import envelope, ingest_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_GROUP_EVENTS = 50_000
JUDGE_BACKLOG = 2  # commits waiting to be judged before the writer waits for the engine
EVIDENCE_CAP = 4 * 1024 * 1024
EVIDENCE_PER_HOUR = 10  # tampering records per agent per hour that keep the batch's bytes
RECORDS_PER_HOUR = 100  # beyond this, an agent's tampering that hour is counted on one record
FAILED_STREAMS_KEPT = 10_000  # streams remembered as broken by a failed commit
MALFORMED_FIELD = "malformed_field"  # the tampering kind of an event an honest agent never sends


class CommitFailed(RuntimeError):
    """The database refused a commit (a full disk, an I/O error): nothing of the batch was
    stored, nor of any batch after it on the same stream, and none is acknowledged. The
    stream ends and the agent, which keeps every event until it is acknowledged, sends them
    all again from the head the collector gives it."""


@dataclass
class _BatchJob:
    checked: VerifiedBatch
    nonce: bytes
    future: Future[ingest_pb2.CollectorMessage]
    clock: SessionClock | None = None  # the stream's measured clock


@dataclass
class _UnsignedJob:
    batch: ingest_pb2.Batch
    agent_id: str  # the agent whose key the stream proved (not the name in the batch)
    reason: str
    detail: str
    future: Future[ingest_pb2.CollectorMessage]


@dataclass
class _CallJob:
    fn: Callable[[Store], Any]
    future: Future[Any]
    changes_agents: bool


@dataclass
class _Group:
    """What one transaction will write, and whom to answer once it commits."""

    rows: list[pa.Table] = field(default_factory=list)  # each batch's events, as stored
    batches: list[tuple[Any, ...]] = field(default_factory=list)
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    tampering: list[tuple[Any, ...]] = field(default_factory=list)
    flooded: dict[str, int] = field(default_factory=dict)  # agent -> records only counted
    answers: list[tuple[Future[Any], Any]] = field(default_factory=list)
    streams: set[bytes] = field(default_factory=set)  # nonces of the streams of its batches
    clocks: dict[str, SessionClock] = field(default_factory=dict)  # newly measured, per agent
    events: int = 0


@dataclass(frozen=True)
class Committed:
    """What one commit stored: events (the rows as written) and agents with new tampering."""

    events: pa.Table | None
    tampering_agents: list[str]


_Job = _BatchJob | _UnsignedJob | _CallJob | None


class Ingestor:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.agents: dict[str, AgentRecord] = store.agent_records()
        self._evidence_kept: dict[str, tuple[int, int]] = {}  # agent -> (hour, records)
        self._records: dict[str, _HourCount] = {}  # agent -> its tampering records this hour
        # Streams (by nonce) a failed commit broke: their later batches are refused too, or
        # the next one would be placed against the head before the lost one, stored as a
        # "gap" and acknowledged, and the agent would delete the lost batch's events.
        self._failed_streams: dict[bytes, None] = {}
        self.storage = StorageHealth()  # a failed commit opens an outage; the next commit ends it
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self._judged: queue.Queue[Committed | None] = queue.Queue(JUDGE_BACKLOG)
        self._judge_thread = threading.Thread(target=self._judge, name="judge", daemon=True)
        self._judge_store: Store | None = None
        # received_ms never goes backwards (the clock may: NTP), so "received after the
        # engine's mark" means what it says (collector/incidents/coverage.catch_up).
        found = store.con.execute("SELECT max(received_ms) FROM events").fetchone()
        self._last_received = int(found[0]) if found and found[0] is not None else 0
        self.committed_events = 0
        self.commits = 0
        # Called on the judge thread, in commit order, after each commit that stored events or
        # tampering records (the incident engine), with the judge's own Store. An exception is
        # logged.
        self.after_commit: list[Callable[[Store, Committed], None]] = []

    def start(self) -> None:
        self._judge_store = self.store.sibling()
        self._judge_thread.start()
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued and judge it, then stop. Safe to call twice."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        if self._judge_thread.is_alive():
            self._judged.put(None)
            self._judge_thread.join()
        if self._judge_store is not None:
            self._judge_store.close()
            self._judge_store = None

    # -- called from any thread -----------------------------------------------------------
    def submit(
        self, checked: VerifiedBatch, nonce: bytes, clock: SessionClock | None = None
    ) -> Future[ingest_pb2.CollectorMessage]:
        """A verified batch from the stream with this nonce and this measured clock."""
        fut: Future[ingest_pb2.CollectorMessage] = Future()
        self._jobs.put(_BatchJob(checked, nonce, fut, clock))
        return fut

    def submit_unsigned(
        self, batch: ingest_pb2.Batch, agent_id: str, reason: str, detail: str
    ) -> Future[ingest_pb2.CollectorMessage]:
        """A refused batch, recorded as tampering against ``agent_id``: the agent whose key
        the stream proved, whatever name the batch carries."""
        fut: Future[ingest_pb2.CollectorMessage] = Future()
        self._jobs.put(_UnsignedJob(batch, agent_id, reason, detail, fut))
        return fut

    def call(self, fn: Callable[[Store], T], changes_agents: bool = False) -> Future[T]:
        """Run fn(store) on the writer thread. Say if it enrols or revokes agents."""
        fut: Future[T] = Future()
        self._jobs.put(_CallJob(fn, fut, changes_agents))
        return fut

    # -- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            jobs: list[_Job] = [self._jobs.get()]
            n = 0
            while n < MAX_GROUP_EVENTS:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                if isinstance(job, _BatchJob):
                    n += job.checked.rows.num_rows
            group = _Group()
            for job in jobs:
                if job is None:
                    stopping = True
                elif isinstance(job, _CallJob):
                    self._commit(group)
                    group = _Group()
                    self._run_call(job)
                elif isinstance(job, _UnsignedJob):
                    self._stage_unsigned(group, job)
                else:
                    if not self._stage_batch(group, job):
                        # It needs to read rows this group has not written yet: write them.
                        self._commit(group)
                        group = _Group()
                        self._stage_batch(group, job)
            self._commit(group)

    def _run_call(self, job: _CallJob) -> None:
        self._judged.join()  # every earlier commit judged; none is judged while this runs
        try:
            result = job.fn(self.store)
        except BaseException as exc:  # handed to the caller, who decides what it means
            if isinstance(exc, duckdb.IOException | OSError):  # e.g. an audit row, disk full
                self.storage.failed(storage_fault(exc))
            _settle(job.future, exc)
            return
        if job.changes_agents:
            # Enrolments and revocations change who may ship; refresh before answering so the
            # caller never sees the old list. Every earlier group has committed, so the stored
            # heads are current.
            self.agents = self.store.agent_records()
        _settle(job.future, result)

    def _evidence(self, agent_id: str, batch: ingest_pb2.Batch) -> bytes | None:
        """The refused batch, kept as evidence for the first few records per agent per hour.
        Only a stream that proved the agent's key gets this far, but that may be a compromised
        PC sending garbage on purpose: beyond the first few, the record is still stored (and
        counted) without its up to 4 MiB of bytes."""
        hour = now_ms() // 3_600_000
        seen_hour, count = self._evidence_kept.get(agent_id, (hour, 0))
        count = count + 1 if seen_hour == hour else 1
        self._evidence_kept[agent_id] = (hour, count)
        if count > EVIDENCE_PER_HOUR:
            return None
        return batch.SerializeToString()[:EVIDENCE_CAP]

    def _record(self, group: _Group, row: tuple[Any, ...]) -> None:
        """Stage a tampering record, or count it once the agent has had its hour's share.

        A PC that sends refused batches in a loop would otherwise grow the database by a row a
        batch for as long as it kept going. The first RECORDS_PER_HOUR each hour are stored one
        by one; the rest are counted on a single `flood` record for that hour, so none goes
        unrecorded and the table stays bounded.
        """
        agent_id = row[0]
        hour = now_ms() // 3_600_000
        count = self._records.get(agent_id)
        if count is None or count.hour != hour:
            count = self._records[agent_id] = _HourCount(hour)
        count.records += 1
        if count.records <= RECORDS_PER_HOUR:
            group.tampering.append(row)
        else:
            group.flooded[agent_id] = group.flooded.get(agent_id, 0) + 1

    def _store_flood(self, group: _Group) -> None:
        """Add this commit's counted-only records to each agent's flood record for the hour."""
        for agent_id, n in group.flooded.items():
            count = self._records[agent_id]
            count.counted += n
            detail = (
                f"{count.counted} further refused batches in the hour from "
                f"{_hour_text(count.hour)} were counted here, not stored one by one (the first "
                f"{RECORDS_PER_HOUR} were)"
            )
            if count.flood_id is None:
                count.flood_id = self.store.add_flood_record(agent_id, detail, now_ms())
            else:
                self.store.update_tampering_detail(count.flood_id, detail)

    def _head(self, group: _Group, agent_id: str) -> tuple[int, bytes]:
        if agent_id in group.heads:
            return group.heads[agent_id]
        rec = self.agents[agent_id]
        return rec.last_seq, rec.head_hash

    def _received_now(self) -> int:
        self._last_received = max(now_ms(), self._last_received)
        return self._last_received

    def _stage_batch(self, group: _Group, job: _BatchJob) -> bool:
        checked = job.checked
        agent_id = checked.batch.agent_id
        if job.nonce in self._failed_streams:
            group.answers.append((job.future, CommitFailed(
                "an earlier batch on this stream was not stored; send it again")))
            return True
        rec = self.agents.get(agent_id)
        if rec is None or rec.revoked_ms is not None:
            why = "unknown agent" if rec is None else "agent revoked"
            group.answers.append((job.future, _reject("revoked", why)))
            return True
        last_seq, head = self._head(group, agent_id)
        if checked.first_seq <= last_seq and agent_id in group.heads:
            return False
        placement = verify.place(
            checked,
            last_seq,
            head,
            lambda a, b: self.store.stored_hashes(agent_id, a, b),
        )
        now = self._received_now()
        if placement.tamper_kind:
            self._record(
                group,
                (
                    agent_id,
                    placement.tamper_kind,
                    placement.tamper_detail,
                    checked.first_seq,
                    checked.last_seq,
                    now,
                    self._evidence(agent_id, checked.batch),
                )
            )
            log.warning(
                "batch.tamper agent=%s kind=%s first=%d last=%d",
                agent_id,
                placement.tamper_kind,
                checked.first_seq,
                checked.last_seq,
            )
        if placement.duplicate:
            group.answers.append((job.future, _ack(last_seq, duplicate=True)))
            return True
        if placement.store_from is None:
            group.answers.append(
                (job.future, _reject(placement.tamper_kind or "rejected", placement.tamper_detail))
            )
            return True
        start = placement.store_from
        rows = checked.rows.slice(start) if start else checked.rows
        if rows.column("malformed").null_count < rows.num_rows:
            self._record_malformed(group, agent_id, rows, now)
        clock = job.clock
        group.rows.append(event_table.stamp_received(rows, now, clock.flag if clock else None))
        if clock is not None and clock.measured_ms != rec.clock_measured_ms:
            group.clocks[agent_id] = clock  # a new stream's measurement: onto the record
        b = checked.batch
        group.batches.append(
            (
                agent_id,
                b.first_seq,
                checked.last_seq,
                b.prev_hash,
                b.head_hash,
                job.nonce,
                b.signature,
                now,
            )
        )
        group.heads[agent_id] = (checked.last_seq, b.head_hash)  # the verifier checked it is
        group.streams.add(job.nonce)
        group.events += rows.num_rows
        group.answers.append((job.future, _ack(checked.last_seq)))
        return True

    def _record_malformed(self, group: _Group, agent_id: str, rows: pa.Table, now: int) -> None:
        """A tampering record for each event its verifier marked: a field no honest agent
        sends (protos/event_fields.py). The event itself is stored with the batch (the chain
        must not break, and it is signed evidence) and never judged; the record keeps its
        bytes, and says which field and why without quoting it."""
        picked = rows.filter(pc.is_valid(rows.column("malformed")))
        for seq, why, raw in zip(
            picked.column("seq").to_pylist(),
            picked.column("malformed").to_pylist(),
            picked.column("raw").to_pylist(),
            strict=True,
        ):
            detail = (f"seq {seq}: {why}; the event is kept as signed evidence and is not "
                      "judged as a detection")  # fmt: skip
            self._record(group, (agent_id, MALFORMED_FIELD, detail, seq, seq, now,
                                 raw[:EVIDENCE_CAP]))  # fmt: skip
            log.warning("event.malformed_field agent=%s seq=%d field=%s", agent_id, seq,
                        why.partition(":")[0])  # fmt: skip

    def _stage_unsigned(self, group: _Group, job: _UnsignedJob) -> None:
        b = job.batch
        agent_id = job.agent_id
        kind = job.reason
        detail = job.detail
        if b.agent_id and b.agent_id != agent_id:
            detail += f" (the batch was labelled as agent {b.agent_id})"
        if kind == "bad_signature" and b.events and b.first_seq >= 1:
            last = b.first_seq + len(b.events) - 1
            stored = self.store.stored_hashes(agent_id, b.first_seq, last)
            kind = verify.classify_unsigned(envelope.chain(b.prev_hash, b.events), stored)
        last_seq = b.first_seq + max(len(b.events), 1) - 1
        self._record(
            group,
            (agent_id, kind, detail, b.first_seq, last_seq, now_ms(),
             self._evidence(agent_id, b)),
        )  # fmt: skip
        log.warning("batch.tamper agent=%s kind=%s", agent_id, kind)
        group.answers.append((job.future, _reject(kind, detail)))

    def _commit(self, group: _Group) -> None:
        if not group.answers:
            return
        events = pa.concat_tables(group.rows) if group.events else None
        try:
            with self.store.transaction():
                if events is not None:
                    self.store.append_events(events)
                if group.batches:
                    self.store.append_batches(group.batches)
                now = now_ms()
                if group.heads:
                    self.store.set_heads(
                        [(seq, h, now, agent) for agent, (seq, h) in group.heads.items()]
                    )
                if group.clocks:
                    self.store.set_clocks(
                        [(c.skew_ms, c.measured_ms, a) for a, c in group.clocks.items()]
                    )
                if group.tampering:
                    self.store.add_tampering(group.tampering)
                if group.flooded:
                    self._store_flood(group)
        except Exception as exc:
            why = storage_fault(exc)
            log.error("ingest.commit_failed batches=%d why=%r detail=%s", len(group.answers), why,
                      exc)  # fmt: skip
            for agent_id in group.flooded:  # its flood record may be gone with the rollback
                self._records.pop(agent_id, None)
            for nonce in group.streams:
                self._failed_streams[nonce] = None
            while len(self._failed_streams) > FAILED_STREAMS_KEPT:
                del self._failed_streams[next(iter(self._failed_streams))]
            failed = CommitFailed(f"{why}: nothing of the batch was stored; send it again")
            for fut, _ in group.answers:
                _settle(fut, failed)
            self.storage.failed(why)
            return
        self.storage.wrote()
        for agent_id, (seq, h) in group.heads.items():
            rec = self.agents[agent_id]
            rec.last_seq, rec.head_hash, rec.last_seen_ms = seq, h, now
        for agent_id, clock in group.clocks.items():
            rec = self.agents[agent_id]
            rec.clock_skew_ms, rec.clock_measured_ms = clock.skew_ms, clock.measured_ms
        self.committed_events += group.events
        self.commits += 1
        for fut, answer in group.answers:
            _settle(fut, answer)
        if self.after_commit and (group.events or group.tampering or group.flooded):
            committed = Committed(
                events=events,
                tampering_agents=[t[0] for t in group.tampering] + list(group.flooded),
            )
            self._judged.put(committed)  # waits while the engine is JUDGE_BACKLOG behind

    # -- the judge thread -----------------------------------------------------------------
    def _judge(self) -> None:
        while True:
            committed = self._judged.get()
            try:
                if committed is None:
                    return
                assert self._judge_store is not None
                for hook in list(self.after_commit):
                    try:
                        hook(self._judge_store, committed)
                    except Exception:
                        log.exception("ingest.after_commit_failed hook=%s", hook)
            finally:
                self._judged.task_done()


@dataclass
class _HourCount:
    hour: int  # hours since the epoch
    records: int = 0  # tampering this hour, stored or counted
    counted: int = 0  # of which only counted, on the flood record
    flood_id: int | None = None


def storage_fault(exc: BaseException) -> str:
    """What a failed write means, in words an operator acts on."""
    text = str(exc).lower()
    if "no space left" in text or "disk full" in text or "enospc" in text:
        return "the collector's disk is full"
    if "read-only" in text:
        return "the collector's disk is read-only"
    return f"the collector could not write its database ({type(exc).__name__})"


def _hour_text(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%Y-%m-%d %H:00 UTC")


def _settle(fut: Future[Any], outcome: Any) -> None:
    """Answer a waiting stream or caller. One that has gone away (a killed agent's stream
    cancels its future) is skipped: its batch is committed all the same, and the agent learns
    that from the next Welcome."""
    if not fut.set_running_or_notify_cancel():
        return
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


def _ack(last_seq: int, duplicate: bool = False) -> ingest_pb2.CollectorMessage:
    return ingest_pb2.CollectorMessage(ack=ingest_pb2.Ack(last_seq=last_seq, duplicate=duplicate))


def _reject(reason: str, detail: str) -> ingest_pb2.CollectorMessage:
    return ingest_pb2.CollectorMessage(reject=ingest_pb2.Reject(reason=reason, detail=detail))



