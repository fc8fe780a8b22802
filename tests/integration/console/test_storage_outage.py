"""A collector that cannot write its database says so at once: a webhook/email alarm and a
console banner; once it writes again, another notice and a candidate (issue 15, finding 5).

The write failure is DuckDB's own error for a full disk, raised from the commit (as in
tests/integration/collector/test_commit_faults.py); a real full disk on a tmpfs is in the
chaos suite."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import grpc
import pytest

from protos import ingest_pb2_grpc
from tests import agentsim
from tests.integration.console.support import Client, ConsoleHarness, Hook, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.received.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        Hook.received.clear()


@pytest.fixture
def site(tmp_path: Path, hook: str) -> Iterator[ConsoleHarness]:
    harness = ConsoleHarness(tmp_path / "collector")
    (harness.data.root / "console.toml").write_text(
        f'[notify]\nbase_url = "https://console.school.example"\nwebhook_url = "{hook}"\n'
    )
    harness.start()
    harness.add_staff()
    try:
        yield harness
    finally:
        harness.stop()


def test_a_collector_that_cannot_write_says_so_at_once_and_records_it_once_it_can(
    site: ConsoleHarness,
) -> None:
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(site.address, site.ca_path))
    agent = agentsim.SimAgent(*agentsim.enrol(stub, site.new_token()))
    store = site.running.ingestor.store
    real_append = store.append_events

    def disk_full(events: Any) -> None:
        raise duckdb.IOException("IO Error: Could not write file: No space left on device")

    dsl = Client(site.url)
    dsl.login("dsl")
    assert "cannot store events" not in dsl.get("/incidents")[1]
    batch = agent.record(3)[:3]
    store.append_events = disk_full  # type: ignore[method-assign]
    try:
        session = agentsim.Session(stub, agent)
        with pytest.raises(grpc.RpcError):
            session.send(agent.batch(session.welcome.nonce, *batch))
        wait_for(lambda: len(Hook.received) == 1)
        alarm = Hook.received[0]
        assert "the collector cannot store events" in alarm["text"]
        assert alarm["link"] == "https://console.school.example/"
        page = dsl.get("/incidents")[1]
        assert "The collector cannot store events" in page and "disk is full" in page
        assert "cannot store events" in dsl.get("/agents")[1]  # on every page
    finally:
        store.append_events = real_append  # type: ignore[method-assign]

    assert agentsim.resend(stub, agent, batch) == (0, [3])  # space is back: the PC resends
    wait_for(lambda: len(Hook.received) == 2)
    assert "stores events again" in Hook.received[1]["text"]
    site.settle()
    page = dsl.get("/incidents")[1]
    assert "The collector cannot store events" not in page
    assert "could not write its database" in page  # the outage, recorded as a candidate
    shown = [dsl.get(f"/incidents/{i}") for i in re.findall(r'href="/incidents/(\d+)"', page)]
    assert [status for status, _ in shown] == [200] * len(shown)
    assert any("could not write its database" in text and "disk is full" in text
               for _, text in shown)  # fmt: skip
    assert site.count(agent.agent_id) == 3
    assert site.tampering() == []
