"""A real collector for tests: TLS gRPC on 127.0.0.1, DuckDB in a temporary folder.

It runs in a thread of the test process with its own event loop, so a test can stop and
restart it (on the same port) and read its database between runs.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from collector import app, operations, pki
from collector.paths import DataDir, make_private_dir
from collector.storage.store import Store

T = TypeVar("T")


def init_data(root: Path) -> DataDir:
    data = DataDir(root)
    make_private_dir(root)
    pki.create(data, "Test School", ["localhost", "127.0.0.1"])
    data.collector_id_file.write_text(str(uuid.uuid4()) + "\n")
    make_private_dir(data.policy_dir)
    Store(data.database).close()
    return data


class CollectorHarness:
    web: str | None = None  # "127.0.0.1:0" also serves the console (see ConsoleHarness)
    verifiers: int = app.DEFAULT_VERIFIERS

    def __init__(self, root: Path) -> None:
        self.data = init_data(root)
        self.port = 0
        self._running: app.Running | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> Path:
        return self.data.ca_cert

    @property
    def data_dir(self) -> Path:
        return self.data.root

    @property
    def running(self) -> app.Running:
        assert self._running is not None, "collector is not running"
        return self._running

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        started: Future[app.Running] = Future()

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                try:
                    started.set_result(
                        await app.start(
                            self.data, f"127.0.0.1:{self.port}", self.web, False, self.verifiers
                        )
                    )
                except BaseException as exc:
                    started.set_exception(exc)

            loop.run_until_complete(boot())
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="collector", daemon=True)
        self._thread.start()
        # Generous: a start publishes the shipped policy (seconds idle, a minute on a loaded CI
        # machine running tests on several workers).
        self._running = started.result(timeout=180)
        self._loop = loop
        self.port = self._running.port

    def stop(self) -> None:
        if self._running is None or self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._running.stop(grace=2), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._running = None

    def with_store(self, fn: Callable[[Store], T], changes_agents: bool = False) -> T:
        """Run fn on the collector's writer thread, or on the database when stopped."""
        if self._running is not None:
            return self._running.ingestor.call(fn, changes_agents).result(timeout=60)
        store = Store(self.data.database)
        try:
            return fn(store)
        finally:
            store.close()

    def op(self, name: str, **args: Any) -> Any:
        return self.with_store(
            lambda s: operations.run(s, self.data, name, args),
            changes_agents=name in operations.CHANGES_AGENTS,
        )

    def new_token(self, uses: int = 1, ttl_s: int = 3600) -> str:
        return str(self.op("token", ttl_s=ttl_s, uses=uses)["token"])

    def events(self, agent_id: str | None = None, limit: int = 1_000_000) -> list[dict[str, Any]]:
        return list(self.op("events", agent_id=agent_id, limit=limit))

    def count(self, agent_id: str | None = None) -> int:
        return int(self.op("count", agent_id=agent_id)["events"])

    def tampering(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        return list(self.op("tampering", agent_id=agent_id))
