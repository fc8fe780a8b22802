"""The running collector: the database, the single writer, gRPC and the admin socket."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from collector import admin, pki
from collector.console import config as console_config
from collector.console.server import Console
from collector.incidents.runtime import IncidentRuntime
from collector.intake import server, vocabulary
from collector.intake.ingest import Ingestor
from collector.intake.verifiers import Verifiers
from collector.paths import DataDir
from collector.storage.store import Store

log = logging.getLogger(__name__)
GC_THRESHOLD = 50_000  # allocations between young collections; CPython's default is 700


def default_verifiers(cores: int) -> int:
    """Verifier processes: one per core but one (the streams, the writer and the engine share
    that one), at least one, at most four."""
    return max(1, min(4, cores - 1))


def duckdb_threads(cores: int) -> int:
    """DuckDB's own threads (compression at checkpoints, console queries): half the cores.

    On 2 cores a second verifier and a DuckDB worker thread only contended with the rest: the
    collector took 11-12 s of CPU per million events without them, 11-16 s with them
    (bench/results/pipeline.md, "Sized to the cores")."""
    return max(1, cores // 2)


CORES = os.cpu_count() or 1
DEFAULT_VERIFIERS = default_verifiers(CORES)
DUCKDB_THREADS = duckdb_threads(CORES)


@dataclass
class Running:
    data: DataDir
    port: int
    store: Store
    ingestor: Ingestor
    verifiers: Verifiers
    grpc_server: grpc.aio.Server
    admin_server: asyncio.AbstractServer
    incidents: IncidentRuntime | None = None
    web: Console | None = None

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work, let in-flight batches commit and be acknowledged, then close."""
        self.admin_server.close()
        if self.web is not None:
            await self.web.stop()
        await self.grpc_server.stop(grace)
        await self.verifiers.close()
        if self.incidents is not None:
            await self.incidents.stop()
        await asyncio.to_thread(self.ingestor.stop)
        if self.incidents is not None:
            self.incidents.close()
        self.store.close()
        self.data.admin_socket.unlink(missing_ok=True)
        log.info(
            "collector.stopped events=%d commits=%d verifier_restarts=%d",
            self.ingestor.committed_events, self.ingestor.commits, self.verifiers.restarts,
        )


async def start(
    data: DataDir,
    listen: str,
    web: str | None = None,
    web_tls: bool | None = None,
    verifiers: int = DEFAULT_VERIFIERS,
) -> Running:
    """Start the collector; with `web` ("HOST:PORT") also the DSL console. The console uses
    TLS (the collector's certificate) unless it listens on loopback only, or web_tls says."""
    cfg = console_config.load(data)
    pki.ensure_evidence_key(data)  # a data folder made before screenshots gets one now
    # Every table read in full before anything listens: a damaged database is refused here,
    # before a batch could be acknowledged into it (collector/storage/db_check.py).
    store = Store(data.database, threads=DUCKDB_THREADS, check=True)
    ingestor = Ingestor(store)
    ingestor.start()
    incidents = IncidentRuntime(ingestor, cfg, data)
    incidents.start()
    vocabulary.ensure(data)  # the names events may carry, before a verifier needs them
    checkers = Verifiers(verifiers, vocabulary.path_of(data))
    console: Console | None = None
    try:
        await checkers.start()
        grpc_server, port = await server.start(
            data, ingestor, checkers, listen, cfg.clock_skew_limit_ms, incidents.witnessed
        )
        admin_server = await admin.serve(data, ingestor)
        if web is not None:
            host, _, web_port = web.rpartition(":")
            tls = web_tls if web_tls is not None else host not in ("127.0.0.1", "localhost", "::1")
            console = Console(data, ingestor, incidents, cfg, tls)
            await console.start(host, int(web_port))
    except BaseException:
        if console is not None:
            await console.stop()
        await checkers.close()
        await incidents.stop()
        ingestor.stop()
        incidents.close()
        store.close()
        raise
    log.info("collector.started listen=%s port=%d agents=%d", listen, port, len(ingestor.agents))
    if (warning := pki.certificate_warning(data)) is not None:
        log.warning("collector.certificate why=%r", warning)
    return Running(
        data, port, store, ingestor, checkers, grpc_server, admin_server, incidents, console
    )


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a process that decodes every event it receives.

    Each batch makes hundreds of short-lived protobuf objects; at CPython's default threshold
    (700) the collector ran a collection every couple of batches, each walking every object
    still queued for the writer. What was loaded at startup (modules, policy, the console's
    templates) is frozen out of collections for good.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


def serve_forever(
    data: DataDir, listen: str, on_ready: Callable[[Running], None], web: str | None = None,
    web_tls: bool | None = None, verifiers: int = DEFAULT_VERIFIERS,
) -> None:  # fmt: skip
    """Run until SIGTERM or SIGINT, then shut down cleanly."""

    async def main() -> None:
        running = await start(data, listen, web, web_tls, verifiers)
        tune_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        on_ready(running)
        await stop.wait()
        log.info("collector.stopping")
        await running.stop()

    asyncio.run(main())
