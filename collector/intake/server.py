"""The gRPC front door: decode, have a verifier check, hand to the writer, answer. Thin on
purpose."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from collector import models, policy
from collector.intake import clock, enrolment, screenshots
from collector.intake.ingest import CommitFailed, Ingestor
from collector.intake.verifiers import Verifiers, VerifierUnavailable
from collector.integrity import anchors
from collector.integrity.verify import VerifiedBatch
from collector.paths import DataDir
from collector.storage.store import now_ms
from protos import envelope, ingest_pb2, ingest_pb2_grpc

log = logging.getLogger(__name__)

VERSION = "0.1.0"
MAX_MESSAGE = 4 * 1024 * 1024  # a batch larger than this is refused by gRPC itself
IN_FLIGHT = 4  # batches per stream verified ahead of their commit
POLICY_REQUEST_SKEW_S = 15 * 60  # a signed policy request older or newer than this is refused
QUEUED_EVENTS = 100_000  # across all streams: bounds memory however many agents connect


class Budget:
    """Events accepted but not yet answered, across all streams. A stream waits for room, so
    memory stays bounded and the waiting is pushed back to the agents (which hold the events).

    Waiters are served in arrival order, each woken once, when its batch fits: no stream is
    starved by smaller batches slipping past it, and an answered batch wakes only the streams
    it makes room for (a condition variable woke every waiting stream each time).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _fits(self, n: int) -> bool:
        # A batch larger than the whole budget still goes through, alone.
        return self.used == 0 or self.used + n <= self.limit

    async def acquire(self, n: int) -> None:
        if not self._waiting and self._fits(n):
            self.used += n
            return
        room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((n, room))
        try:
            await room
        except asyncio.CancelledError:
            if room.done() and not room.cancelled():
                self.release(n)  # granted just as the stream went away: give it back
            else:
                room.cancel()
                self._grant()  # it may have held up the ones behind it
            raise

    def release(self, n: int) -> None:
        self.used -= n
        self._grant()

    def _grant(self) -> None:
        while self._waiting:
            n, room = self._waiting[0]
            if room.done():  # its stream went away while waiting
                self._waiting.popleft()
                continue
            if not self._fits(n):
                return
            self._waiting.popleft()
            self.used += n
            room.set_result(None)


# Told when a PC hands back a checkpoint the chains no longer reach: (agent, problems).
Witness = Callable[[str, list[str]], None]


class CollectorService(ingest_pb2_grpc.CollectorServicer):
    def __init__(self, data: DataDir, ingestor: Ingestor, verifiers: Verifiers,
                 clock_limit_ms: int = clock.DEFAULT_LIMIT_MS,
                 on_witness: Witness | None = None) -> None:  # fmt: skip
        self.data = data
        self.on_witness = on_witness
        self._checkpoint: tuple[float, bytes] = (0.0, b"")  # (anchors.json's mtime, bytes)
        self.clock_limit_ms = clock_limit_ms
        self.ingestor = ingestor
        self.verifiers = verifiers
        self.budget = Budget(QUEUED_EVENTS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._evidence_locks: dict[str, asyncio.Lock] = {}

    async def Enrol(
        self,
        request: ingest_pb2.EnrolRequest,
        context: grpc.aio.ServicerContext[ingest_pb2.EnrolRequest, ingest_pb2.EnrolResponse],
    ) -> ingest_pb2.EnrolResponse:
        applicant = enrolment.Applicant(
            token=request.token,
            public_key=request.public_key,
            proof=request.proof,
            hostname=request.hostname,
            os=request.os,
            version=request.agent_version,
        )
        try:
            agent_id = await asyncio.wrap_future(
                self.ingestor.call(
                    lambda store: enrolment.enrol(store, self.data, applicant),
                    changes_agents=True,
                )
            )
        except enrolment.EnrolmentError as exc:
            log.warning("enrol.refused host=%s reason=%s", request.hostname, exc)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        return ingest_pb2.EnrolResponse(
            agent_id=agent_id,
            policy_public_key=self.data.policy_pub.read_bytes(),
            collector_id=self.data.collector_id_file.read_text().strip(),
        )

    async def FetchPolicy(
        self,
        request: ingest_pb2.PolicyRequest,
        context: grpc.aio.ServicerContext[ingest_pb2.PolicyRequest, ingest_pb2.PolicyBundle],
    ) -> ingest_pb2.PolicyBundle:
        await self._signed_by_agent(
            context, request.agent_id, request.signature, request.unix_ms,
            envelope.policy_request_payload(request.agent_id, request.have_version,
                                            request.unix_ms))  # fmt: skip
        return policy.newer_than(self.data, request.have_version)

    async def _signed_by_agent(self, context: grpc.aio.ServicerContext[Any, Any], agent_id: str,
                               signature: bytes, unix_ms: int, payload: bytes) -> None:  # fmt: skip
        """Abort unless an enrolled, unrevoked agent signed ``payload`` recently."""
        rec = self.ingestor.agents.get(agent_id)
        if rec is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown agent")
        if rec.revoked_ms is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "the agent has been revoked")
        try:
            envelope.public_key_from_raw(rec.public_key).verify(signature, payload)
        except InvalidSignature:
            log.warning("request.unproven agent=%s peer=%s", agent_id, context.peer())
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "the request is not signed with the agent's key"
            )
        skew_s = abs(now_ms() - unix_ms) / 1000
        if skew_s > POLICY_REQUEST_SKEW_S:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the agent's clock is {skew_s / 60:.0f} minutes away from the collector's; "
                "set the PC's time (safeguard-install doctor checks it)",
            )

    async def FetchModel(
        self,
        request: ingest_pb2.ModelRequest,
        context: grpc.aio.ServicerContext[ingest_pb2.ModelRequest, ingest_pb2.ModelChunk],
    ) -> ingest_pb2.ModelChunk:
        await self._signed_by_agent(
            context, request.agent_id, request.signature, request.unix_ms,
            envelope.model_request_payload(request.agent_id, request.sha256, request.offset,
                                           request.unix_ms))  # fmt: skip
        found = models.chunk(self.data, request.sha256, request.offset)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no model with that SHA-256 here")
        assert found is not None
        return ingest_pb2.ModelChunk(data=found[0], size=found[1])

    async def PutEvidence(
        self,
        request: ingest_pb2.EvidenceChunk,
        context: grpc.aio.ServicerContext[ingest_pb2.EvidenceChunk, ingest_pb2.EvidenceAck],
    ) -> ingest_pb2.EvidenceAck:
        """A chunk of a sealed screenshot, in order; the answer says how much is held."""
        await self._signed_by_agent(
            context, request.agent_id, request.signature, request.unix_ms,
            envelope.evidence_chunk_payload(request.agent_id, request.event_id, request.sha256,
                                            request.size, request.offset, request.data,
                                            request.unix_ms))  # fmt: skip
        lock = self._evidence_locks.setdefault(request.agent_id, asyncio.Lock())
        try:
            screenshots.check_chunk(request)
            async with lock:  # one writer per agent's files, however many calls arrive
                held, whole = await asyncio.to_thread(screenshots.write_chunk, self.data, request)
        except screenshots.Refused as exc:
            log.warning("screenshot.refused agent=%s event=%s why=%s", request.agent_id,
                        request.event_id, exc)  # fmt: skip
            await context.abort(getattr(grpc.StatusCode, exc.kind), str(exc))
        if whole:
            stored = await asyncio.wrap_future(self.ingestor.call(
                lambda store: screenshots.record(store, self.data, request)))  # fmt: skip
            log.info("screenshot.stored agent=%s event=%s bytes=%d", request.agent_id,
                     request.event_id, stored.size)  # fmt: skip
        return ingest_pb2.EvidenceAck(have=held, complete=whole)

    def _latest_checkpoint(self) -> bytes:
        """anchors.json as it is now (read again only when it changed), for the agent to keep."""
        path = anchors.path(self.data)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return b""
        if mtime != self._checkpoint[0]:
            self._checkpoint = (mtime, path.read_bytes())
        return self._checkpoint[1]

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # held, so it is not collected before it ends
        task.add_done_callback(self._tasks.discard)

    async def _hold_to(self, agent_id: str, witnessed: bytes) -> None:
        """Hold the chains to the checkpoint a PC kept: every PC is a copy off this host."""
        try:
            checkpoint = anchors.parse(json.loads(witnessed))
        except (ValueError, KeyError, TypeError):
            log.warning("anchors.witness_unreadable agent=%s", agent_id)
            return
        if not anchors.signed_by_collector(self.data, checkpoint):
            log.warning("anchors.witness_not_signed agent=%s (not a checkpoint of ours)", agent_id)
            return
        current = anchors.load(self.data)
        if current is not None and checkpoint.at_ms <= current.acknowledged_ms:
            return  # before a restore that was acknowledged: not held against the chains
        try:
            found = await asyncio.wrap_future(
                self.ingestor.call(lambda store: anchors.problems(store.con, checkpoint))
            )
        except Exception:
            log.exception("anchors.witness_check_failed agent=%s", agent_id)
            return
        if found and self.on_witness is not None:
            self.on_witness(agent_id, found)

    async def Ship(
        self,
        request_iterator: AsyncIterator[ingest_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[ingest_pb2.AgentMessage, ingest_pb2.CollectorMessage],
    ) -> AsyncIterator[ingest_pb2.CollectorMessage]:
        try:
            async for message in self._ship(request_iterator, context):
                yield message
        except asyncio.CancelledError:
            # The collector is stopping (or the stream was torn down under it). Whatever was
            # acknowledged is committed and the agent resends the rest, so end quietly: grpc
            # logs a cancellation that escapes a handler as an unhandled error.
            log.info("stream.cancelled peer=%s", context.peer())

    async def _ship(
        self,
        request_iterator: AsyncIterator[ingest_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[ingest_pb2.AgentMessage, ingest_pb2.CollectorMessage],
    ) -> AsyncIterator[ingest_pb2.CollectorMessage]:
        messages = aiter(request_iterator)
        first = await self._next(messages, context)
        if first is None or first.WhichOneof("msg") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a stream starts with Hello")
        hello = first.hello
        measured = clock.measure(hello.unix_ms, now_ms(), self.clock_limit_ms)
        rec = self.ingestor.agents.get(hello.agent_id)
        if rec is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"agent {hello.agent_id!r} is not enrolled with this collector",
            )
        if rec.revoked_ms is not None:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"agent {hello.agent_id} has been revoked"
            )
        key = envelope.public_key_from_raw(rec.public_key)
        nonce = secrets.token_bytes(envelope.NONCE_LEN)
        # Prove the key before anything else: otherwise anyone who can reach the port could
        # read an agent's chain head and send batches that become tampering records in its name.
        yield ingest_pb2.CollectorMessage(challenge=ingest_pb2.Challenge(nonce=nonce))
        proof = await self._next(messages, context)
        if not self._proven(proof, key, rec.agent_id, nonce):
            log.warning("stream.unproven agent=%s peer=%s", rec.agent_id, context.peer())
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"the stream did not prove it holds agent {rec.agent_id}'s key",
            )
        rec.last_seen_ms = now_ms()
        log.info(
            "stream.open agent=%s host=%s last_seq=%d", rec.agent_id, hello.hostname, rec.last_seq
        )
        if measured.flag is not None:
            log.warning("stream.clock_skewed agent=%s host=%s skew_s=%d (%s; its events are "
                        "flagged)", rec.agent_id, hello.hostname, measured.flag // 1000,
                        clock.describe(measured.flag))  # fmt: skip
        if hello.witnessed_checkpoint and self.on_witness is not None:
            self._background(self._hold_to(rec.agent_id, hello.witnessed_checkpoint))
        yield ingest_pb2.CollectorMessage(
            welcome=ingest_pb2.Welcome(
                checkpoint=self._latest_checkpoint(),
                nonce=nonce,
                last_seq=rec.last_seq,
                head_hash=rec.head_hash,
                collector_version=VERSION,
                policy_version=policy.current_version(self.data),
                clock_skew_ms=measured.skew_ms or 0,
                clock_measured=measured.skew_ms is not None,
                clock_skew_limit_ms=self.clock_limit_ms,
            )
        )
        pending: asyncio.Queue[asyncio.Future[ingest_pb2.CollectorMessage] | None] = asyncio.Queue(
            IN_FLIGHT
        )
        reader = asyncio.create_task(
            self._read_batches(messages, rec.agent_id, rec.public_key, nonce, measured, pending)
        )
        try:
            while (answer := await pending.get()) is not None:
                try:
                    message = await answer
                except VerifierUnavailable as exc:
                    log.warning("stream.unverified agent=%s error=%s", rec.agent_id, exc)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; send it again")
                except CommitFailed as exc:  # the writer logged why; the agent keeps the events
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
                if message.WhichOneof("msg") == "ack":
                    # A policy published while the stream is open reaches the agent with its
                    # next ack (a heartbeat at the latest), not at its next connection.
                    message.ack.policy_version = policy.current_version(self.data)
                yield message
                if message.WhichOneof("msg") == "reject":
                    break
        finally:
            reader.cancel()

    @staticmethod
    async def _next(
        messages: AsyncIterator[ingest_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[ingest_pb2.AgentMessage, ingest_pb2.CollectorMessage],
    ) -> ingest_pb2.AgentMessage | None:
        try:
            return await anext(messages, None)
        except DecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the message does not parse")
            raise  # abort raises; this line is for the type checker

    @staticmethod
    def _proven(
        answer: ingest_pb2.AgentMessage | None, key: Ed25519PublicKey, agent_id: str, nonce: bytes
    ) -> bool:
        if answer is None or answer.WhichOneof("msg") != "proof":
            return False
        try:
            key.verify(answer.proof.signature, envelope.hello_proof_payload(agent_id, nonce))
        except InvalidSignature:
            return False
        return True

    async def _read_batches(
        self,
        requests: AsyncIterator[ingest_pb2.AgentMessage],
        agent_id: str,
        key_raw: bytes,
        nonce: bytes,
        measured: clock.SessionClock,
        pending: asyncio.Queue[asyncio.Future[ingest_pb2.CollectorMessage] | None],
    ) -> None:
        messages = aiter(requests)
        loop = asyncio.get_running_loop()
        previous: asyncio.Future[bool] | None = None  # the batch before: handed to the writer?
        try:
            while True:
                try:
                    message = await anext(messages)
                except StopAsyncIteration:
                    break
                except DecodeError as exc:
                    # Not a batch at all: record it against the agent that said hello, stop.
                    future = self.ingestor.submit_unsigned(
                        ingest_pb2.Batch(agent_id=agent_id), agent_id,
                        "malformed",
                        f"a message did not parse: {exc}",
                    )
                    await pending.put(asyncio.wrap_future(future))
                    break
                n = len(message.batch.events)
                await self.budget.acquire(n)
                handed: asyncio.Future[bool] = loop.create_future()
                answer = asyncio.ensure_future(
                    self._check(message, agent_id, key_raw, nonce, measured, previous, handed)
                )
                answer.add_done_callback(functools.partial(self._settled, n))
                previous = handed
                await pending.put(answer)
        finally:
            await pending.put(None)

    def _settled(self, n: int, answer: asyncio.Future[ingest_pb2.CollectorMessage]) -> None:
        self.budget.release(n)
        if not answer.cancelled():
            answer.exception()  # retrieved: a stream that ended early never awaits the rest

    async def _check(
        self,
        message: ingest_pb2.AgentMessage,
        agent_id: str,
        key_raw: bytes,
        nonce: bytes,
        measured: clock.SessionClock,
        previous: asyncio.Future[bool] | None,
        handed: asyncio.Future[bool],
    ) -> ingest_pb2.CollectorMessage:
        """Have a verifier check the batch, then queue it for the writer (or the record) once
        the stream's previous batch is queued: verifiers run in parallel, but the writer must
        see each agent's batches in the order they were sent. A batch that could not be
        checked stops the ones behind it from reaching the writer, where they would look like
        a gap; the stream ends and the agent sends them all again."""
        try:
            batch = message.batch
            outcome: VerifiedBatch | envelope.EnvelopeError
            if message.WhichOneof("msg") != "batch" or batch.agent_id != agent_id:
                outcome = envelope.EnvelopeError(
                    "malformed: expected a batch for the agent that said hello"
                )
            else:
                try:
                    rows = await self.verifiers.check(batch, key_raw, nonce)
                    outcome = VerifiedBatch(batch, rows)
                except envelope.EnvelopeError as exc:
                    outcome = exc
            if previous is not None and not await previous:
                raise VerifierUnavailable("an earlier batch on this stream was not checked")
            if isinstance(outcome, VerifiedBatch):
                future = self.ingestor.submit(outcome, nonce, measured)
            else:
                reason, _, detail = str(outcome).partition(": ")
                future = self.ingestor.submit_unsigned(batch, agent_id, reason, detail)
            handed.set_result(True)
        finally:
            if not handed.done():
                handed.set_result(False)
        return await asyncio.wrap_future(future)


async def start(
    data: DataDir, ingestor: Ingestor, verifiers: Verifiers, listen: str,
    clock_limit_ms: int = clock.DEFAULT_LIMIT_MS, on_witness: Witness | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start the TLS gRPC server; returns it and the port it bound (listen may use port 0)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ]
    )
    service = CollectorService(data, ingestor, verifiers, clock_limit_ms, on_witness)
    ingest_pb2_grpc.add_CollectorServicer_to_server(service, server)
    credentials = grpc.ssl_server_credentials(
        [(data.server_key.read_bytes(), data.server_cert.read_bytes())]
    )
    port = server.add_secure_port(listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    return server, port
