"""What a page's handlers may use of the console: read, write, record, render, and the shared
state. The views depend on this, not on the server that runs them (collector/console/server.py
builds the app from the views and satisfies it), so the two do not import each other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import duckdb
from aiohttp import web

from collector.accounts import Account
from collector.console.config import ConsoleConfig
from collector.console.sessions import Sessions, Throttle
from collector.incidents.runtime import IncidentRuntime
from collector.intake.ingest import Ingestor
from collector.integrity.audit import Audit
from collector.paths import DataDir
from collector.storage.store import Store

T = TypeVar("T")


class ConsoleContext(Protocol):
    data: DataDir
    cfg: ConsoleConfig
    audit: Audit
    sessions: Sessions
    throttle: Throttle
    ingestor: Ingestor
    incidents: IncidentRuntime

    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T: ...

    async def write(self, fn: Callable[[Store], T]) -> T: ...

    async def record(self, who: Account, action: str, target: str, detail: str = "") -> None: ...

    def client_address(self, request: web.Request) -> str: ...

    def render(
        self, request: web.Request, name: str, status: int = 200, **ctx: Any
    ) -> web.Response: ...
