"""Verifier processes, from the collector's side: hand a batch to one, await its rows.

The gRPC streams run on one event loop and the writer on one thread, both in one process and
under one GIL; checking every event of every batch there capped the collector at about one
core. Here each batch goes to the least busy of a few child processes
(`collector/intake/verifier_worker.py`) over a pipe, and comes back as an Arrow table the writer
inserts as it is. A child answers in the order it was asked; the streams keep each agent's
batches in order themselves (collector/intake/server.py).

A child that dies fails only the batches it held (their streams end with UNAVAILABLE and the
agents send them again from their last acknowledgement) and is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from collector.intake.verifier_worker import FAILED, HEADER, OK, REFUSED, from_ipc, request
from protos import envelope, ingest_pb2

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 1.0  # a child that dies this soon after starting waits this long to restart


class VerifierUnavailable(RuntimeError):
    """The batch could not be checked here and now; the agent should send it again."""


@dataclass
class _Child:
    proc: asyncio.subprocess.Process
    started: float
    waiting: deque[asyncio.Future[pa.Table]] = field(default_factory=deque)
    reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and self.reader is not None and not self.reader.done()


class Verifiers:
    def __init__(self, count: int, vocabulary: Path | None = None) -> None:
        """`vocabulary`: the file of names events may carry (collector/intake/vocabulary.py)."""
        if count < 1:
            raise ValueError("at least one verifier process is needed")
        self.count = count
        self._vocabulary = vocabulary
        self._children: list[_Child] = []
        self._closing = False
        self._ready = asyncio.Event()
        self._readers: set[asyncio.Task[None]] = set()  # a dead child's may still be replacing it
        self.restarts = 0

    async def start(self) -> None:
        self._children = [await self._spawn() for _ in range(self.count)]
        self._ready.set()
        log.info("verifiers.started count=%d", self.count)

    async def check(
        self, batch: ingest_pb2.Batch, public_key: bytes, nonce: bytes
    ) -> pa.Table:
        """The batch's rows; EnvelopeError if it is refused; VerifierUnavailable if it could not
        be checked (a child died holding it, or the collector is stopping)."""
        frame = request(public_key, nonce, batch.SerializeToString())
        child = await self._least_busy()
        answer: asyncio.Future[pa.Table] = asyncio.get_running_loop().create_future()
        # Append and write in one step: a child answers in the order it was written to.
        child.waiting.append(answer)
        stdin = child.proc.stdin
        assert stdin is not None
        stdin.write(frame)
        with contextlib.suppress(ConnectionError):  # the child died: its reader fails what it
            await stdin.drain()  # held, this answer included
        return await answer

    async def close(self) -> None:
        """Stop the children once they have answered what they hold."""
        self._closing = True
        for child in self._children:
            if child.proc.stdin is not None:
                child.proc.stdin.close()
        for child in self._children:
            try:
                await asyncio.wait_for(child.proc.wait(), 10)
            except TimeoutError:
                child.proc.kill()
                await child.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children]

    def held(self) -> dict[int, int]:
        """Batches each verifier (by pid) has been handed and not yet answered."""
        return {c.proc.pid: len(c.waiting) for c in self._children}

    async def _least_busy(self) -> _Child:
        while True:
            if self._closing:
                raise VerifierUnavailable("the collector is stopping")
            alive = [c for c in self._children if c.alive]
            if alive:
                return min(alive, key=lambda c: len(c.waiting))
            self._ready.clear()
            await self._ready.wait()

    async def _spawn(self) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "collector.intake.verifier_worker",
            *([str(self._vocabulary)] if self._vocabulary is not None else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**22,  # buffered answers before the pipe is paused (read whole all the same)
        )
        child = _Child(proc, time.monotonic())
        child.reader = asyncio.get_running_loop().create_task(self._read(child))
        self._readers.add(child.reader)
        child.reader.add_done_callback(self._readers.discard)
        return child

    async def _read(self, child: _Child) -> None:
        stdout = child.proc.stdout
        assert stdout is not None
        try:
            while True:
                status, size = HEADER.unpack(await stdout.readexactly(HEADER.size))
                body = await stdout.readexactly(size)
                answer = child.waiting.popleft()
                if answer.done():  # its stream went away
                    continue
                if status == OK:
                    answer.set_result(from_ipc(body))
                elif status == REFUSED:
                    answer.set_exception(envelope.EnvelopeError(body.decode(errors="replace")))
                elif status == FAILED:
                    log.error("verifier.failed pid=%d error=%r", child.proc.pid, body.decode())
                    answer.set_exception(VerifierUnavailable("the verifier failed on this batch"))
                else:
                    raise ValueError(f"unknown status {status}")
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError) as exc:
            if not self._closing:
                log.error(
                    "verifier.died pid=%d returncode=%s held=%d error=%r",
                    child.proc.pid, child.proc.returncode, len(child.waiting), exc,
                )  # fmt: skip
        finally:
            self._fail_waiting(child)
        if not self._closing:
            await self._replace(child)

    def _fail_waiting(self, child: _Child) -> None:
        while child.waiting:
            answer = child.waiting.popleft()
            if not answer.done():
                answer.set_exception(VerifierUnavailable("a verifier process stopped"))

    async def _replace(self, child: _Child) -> None:
        if child.proc.returncode is None:
            child.proc.kill()
        await child.proc.wait()
        if time.monotonic() - child.started < RESTART_PAUSE_S:
            await asyncio.sleep(RESTART_PAUSE_S)  # dying at once again would spin
        if self._closing:
            return
        fresh = await self._spawn()
        self._children[self._children.index(child)] = fresh
        self.restarts += 1
        self._ready.set()
        log.warning("verifier.restarted pid=%d restarts=%d", fresh.proc.pid, self.restarts)
