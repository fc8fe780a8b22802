"""The service with screenshot evidence wired in, against the real collector: a picture left
waiting by an earlier run is uploaded on the uploader's own connection and leaves the PC,
and events ship all the same. (A collector that takes no pictures, or is down, is
tests/integration/agent/test_evidence_upload.py's.)"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from agent.evidence_store import EvidenceStore
from agent.identity import StateDir, load_identity
from agent.service import Service, ServiceConfig
from tests.harness import CollectorHarness
from tests.integration.agent.test_agent_service import kinds

pytestmark = pytest.mark.integration


def test_a_waiting_picture_is_uploaded_and_events_ship_alongside(
    collector: CollectorHarness, state: StateDir, wait: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level("INFO")
    agent_id = load_identity(state).agent_id
    store = EvidenceStore(state.root / "evidence")
    store.put("0" * 32, b"sealed picture from an earlier run", budget_mb=20)
    stop = threading.Event()
    service = Service(state, ServiceConfig(heartbeat_s=0.2, flush_s=10))
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    try:
        wait(lambda: not store.waiting(), what="the picture uploaded and gone from the PC")
        wait(lambda: kinds(collector.events(agent_id)).count("heartbeat") >= 3,
             what="heartbeats shipped beside the upload")  # fmt: skip
    finally:
        stop.set()
        thread.join(60)
    query = "SELECT event_id, size FROM screenshots WHERE agent_id = ?"
    held = collector.with_store(lambda s: s.con.execute(query, [agent_id]).fetchall())
    assert held == [("0" * 32, len(b"sealed picture from an earlier run"))]
    assert service.uploader is not None and service.uploader.last_error is None
