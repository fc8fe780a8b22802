"""The agents page says when each PC last showed the monitoring notice at a login, and from
which policy, as its heartbeats report it; a heartbeat that names no showing (the agent
restarted since, and nobody has logged in) keeps the last one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from collector.console.server import when
from collector.console.views_school import agents_view
from protos import events_pb2, ingest_pb2_grpc
from tests import agentsim
from tests.integration.console.support import Client, ConsoleHarness, wait_for

pytestmark = pytest.mark.integration

SHOWN_MS = 1_780_000_000_000  # a login on 28 May 2026


def heartbeat(shown_ms: int, version: str) -> Callable[[int], events_pb2.Event]:
    def make(seq: int) -> events_pb2.Event:
        beat = events_pb2.Heartbeat(policy_version="4", agent_version="sim",
                                    notice_shown_unix_ms=shown_ms, notice_version=version)
        return events_pb2.Event(seq=seq, observed_unix_ms=int(time.time() * 1000),
                                event_id=f"beat-{seq}", heartbeat=beat)  # fmt: skip

    return make


def row(console: ConsoleHarness) -> dict[str, Any]:
    view = console.with_store(lambda s: agents_view(s.con, 3_600_000))
    found: dict[str, Any] = view["agents"][0]
    return found


def ship(console: ConsoleHarness, agent: agentsim.SimAgent, shown_ms: int, version: str) -> None:
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(console.address, console.ca_path))
    session = agentsim.Session(stub, agent)
    batch = agent.record(1, make=heartbeat(shown_ms, version))[:3]
    assert session.send(agent.batch(session.welcome.nonce, *batch)).WhichOneof("msg") == "ack"
    session.close()


def test_the_agents_page_shows_when_each_pc_last_showed_the_notice(
    console: ConsoleHarness,
) -> None:
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(console.address, console.ca_path))
    agent = agentsim.SimAgent(*agentsim.enrol(stub, console.new_token()))
    tech = Client(console.url)
    tech.login("tech")
    ship(console, agent, 0, "")
    wait_for(lambda: row(console).get("heartbeat_ms"))
    assert row(console)["notice_shown_ms"] is None
    assert "not yet" in tech.get("/agents")[1]

    ship(console, agent, SHOWN_MS, "3")
    wait_for(lambda: row(console)["notice_shown_ms"] == SHOWN_MS)
    assert row(console)["notice_version"] == "3"
    page = tech.get("/agents")[1]
    assert when(SHOWN_MS) in page and "policy 3" in page

    # The agent restarted: its heartbeats name no showing until the next login's.
    first_beat = row(console)["heartbeat_ms"]
    ship(console, agent, 0, "")
    wait_for(lambda: row(console)["heartbeat_ms"] != first_beat)
    assert (row(console)["notice_shown_ms"], row(console)["notice_version"]) == (SHOWN_MS, "3")


def test_dropped_events_are_still_counted_with_the_notice_columns(console: ConsoleHarness) -> None:
    """An agent's DROPPED report before any heartbeat makes its health row: by column name, so
    the notice columns (default empty) do not break it."""
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(console.address, console.ca_path))
    agent = agentsim.SimAgent(*agentsim.enrol(stub, console.new_token()))

    def dropped(seq: int) -> events_pb2.Event:
        status = events_pb2.AgentStatus(kind=events_pb2.AgentStatus.DROPPED, count=7)
        return events_pb2.Event(seq=seq, observed_unix_ms=int(time.time() * 1000),
                                event_id=f"drop-{seq}", status=status)  # fmt: skip

    session = agentsim.Session(stub, agent)
    batch = agent.record(1, make=dropped)[:3]
    assert session.send(agent.batch(session.welcome.nonce, *batch)).WhichOneof("msg") == "ack"
    session.close()
    wait_for(lambda: row(console).get("dropped") == 7)
    assert row(console)["notice_shown_ms"] is None
