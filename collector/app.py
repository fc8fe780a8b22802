"""The running collector: the database, the single writer, gRPC and the admin socket."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from collector import admin, server
from collector.ingest import Ingestor
from collector.paths import DataDir
from collector.store import Store

log = logging.getLogger(__name__)


@dataclass
class Running:
    data: DataDir
    port: int
    store: Store
    ingestor: Ingestor
    grpc_server: grpc.aio.Server
    admin_server: asyncio.AbstractServer

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work, let in-flight batches commit and be acknowledged, then close."""
        self.admin_server.close()
        await self.grpc_server.stop(grace)
        await asyncio.to_thread(self.ingestor.stop)
        self.store.close()
        self.data.admin_socket.unlink(missing_ok=True)
        log.info("collector.stopped events=%d", self.ingestor.committed_events)


async def start(data: DataDir, listen: str) -> Running:
    store = Store(data.database)
    ingestor = Ingestor(store)
    ingestor.start()
    try:
        grpc_server, port = await server.start(data, ingestor, listen)
        admin_server = await admin.serve(data, ingestor)
    except BaseException:
        ingestor.stop()
        store.close()
        raise
    log.info("collector.started listen=%s port=%d agents=%d", listen, port, len(ingestor.agents))
    return Running(data, port, store, ingestor, grpc_server, admin_server)


def serve_forever(data: DataDir, listen: str, on_ready: Callable[[Running], None]) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""

    async def main() -> None:
        running = await start(data, listen)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        on_ready(running)
        await stop.wait()
        log.info("collector.stopping")
        await running.stop()

    asyncio.run(main())
