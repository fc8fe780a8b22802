"""A stream cancelled under the handler (the collector stopping) ends quietly.

grpc.aio logs a CancelledError that escapes a servicer method as an unhandled ERROR with a
traceback, which is what a technician saw in the log after Ctrl-C on the demo.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.intake.server import CollectorService
from collector.paths import DataDir
from collector.storage.store import AgentRecord
from protos import envelope, ingest_pb2

pytestmark = pytest.mark.unit


class _Context:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


class _Ingestor:
    def __init__(self, rec: AgentRecord) -> None:
        self.agents = {rec.agent_id: rec}


def test_a_stream_cancelled_while_open_ends_without_raising(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    agent_id = "ag-test"
    rec = AgentRecord(agent_id, key.public_key().public_bytes_raw(), "pc", None, 0,
                      envelope.genesis(agent_id), None)  # fmt: skip
    service = CollectorService(DataDir(tmp_path), _Ingestor(rec), None)  # type: ignore[arg-type]

    async def scenario() -> asyncio.Task[None]:
        to_agent: asyncio.Queue[ingest_pb2.AgentMessage] = asyncio.Queue()

        async def from_agent() -> AsyncIterator[ingest_pb2.AgentMessage]:
            while True:
                yield await to_agent.get()

        got: list[str] = []

        async def handler() -> None:
            async for message in service.Ship(from_agent(), _Context()):  # type: ignore[arg-type]
                kind = message.WhichOneof("msg")
                got.append(kind or "")
                if kind == "challenge":
                    nonce = message.challenge.nonce
                    proof = key.sign(envelope.hello_proof_payload(agent_id, nonce))
                    to_agent.put_nowait(ingest_pb2.AgentMessage(
                        proof=ingest_pb2.Proof(signature=proof)))  # fmt: skip

        to_agent.put_nowait(ingest_pb2.AgentMessage(hello=ingest_pb2.Hello(agent_id=agent_id)))
        task = asyncio.create_task(handler())
        for _ in range(50):
            if "welcome" in got:
                break
            await asyncio.sleep(0)
        assert got == ["challenge", "welcome"]  # open and idle, waiting for batches
        task.cancel()  # what stopping the server does to a handler still running
        await asyncio.wait([task])
        return task

    task = asyncio.run(scenario())
    assert not task.cancelled()
    assert task.exception() is None
