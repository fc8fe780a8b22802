"""The service with screenshot evidence wired in, against today's real collector (which
answers PutEvidence with UNIMPLEMENTED): waiting pictures stay in their outbox, the uploader
says once that the collector takes none, and events ship all the same."""

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


def test_pictures_wait_for_a_collector_that_takes_none_and_events_do_not(
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
        wait(lambda: "evidence.collector_takes_none" in caplog.text, what="the uploader's word")
        wait(lambda: kinds(collector.events(agent_id)).count("heartbeat") >= 3,
             what="heartbeats shipped while the picture waits")  # fmt: skip
    finally:
        stop.set()
        thread.join(60)
    assert service.uploader is not None and service.uploader.last_error == "UNIMPLEMENTED"
    assert [w.event_id for w in store.waiting()] == ["0" * 32]
    assert caplog.text.count("evidence.collector_takes_none") == 1
