"""USB decisions the whole way: simulated devices plugged into a umockdev testbed, judged by
the USB sensor inside the real agent service, shipped signed to the real collector, stored
with their chain verified, and the blocked stick made an incident candidate. (The sensor's own
behaviour is in test_agent_usb_umockdev.py.)

The testbed is made by the system python under umockdev-wrapper; the agent service runs in the
venv as its child (usb_pipeline_child.py), so it sees the testbed, and reaches the collector
on 127.0.0.1 (umockdev does not touch TCP).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from agent.enrol import enrol
from agent.identity import StateDir, load_identity
from collector.incidents import queries
from tests.e2e.agent_sensors.test_agent_usb_umockdev import (
    HERE,
    MERILOCK,
    ROOT,
    STORAGE,
    Bed,
    _umockdev_available,
)
from tests.harness import CollectorHarness

pytestmark = pytest.mark.e2e

T = TypeVar("T")
DEADLINE_S = 90.0  # generous: every wait below returns as soon as its condition holds

STICK = {"idVendor": "0781", "idProduct": "5567", "serial": "4C530001", "bNumInterfaces": " 1",
         "manufacturer": "SanDisk", "product": "Cruzer Blade"}  # fmt: skip


@dataclass
class UsbAgent:
    bed: Bed
    collector: CollectorHarness
    agent_id: str
    process: psutil.Process

    def wait(self, found: Callable[[], T | None], what: str, timeout: float = DEADLINE_S) -> T:
        """Poll until found() gives something; fail early if the agent has exited."""
        deadline = time.monotonic() + timeout
        while True:
            result = found()
            if result:
                return result
            try:
                alive = self.process.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:  # already reaped by the testbed
                alive = False
            if not alive or time.monotonic() >= deadline:
                log = self.bed.tmp / "sensor.log"
                raise AssertionError(
                    f"{'agent exited' if not alive else 'timed out'} waiting for {what}; "
                    f"log:\n{log.read_text() if log.exists() else ''}"
                )
            time.sleep(0.1)

    def usb_events(self) -> list[dict[str, Any]]:
        return [e for e in self.collector.events(self.agent_id) if "usb" in e["event"]]

    def stored(self, path: str, action: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for e in self.usb_events():
                usb = e["event"]["usb"]
                if usb.get("device_path") == path and usb.get("action") == action:
                    return e
            return None

        return self.wait(find, f"the collector to store {action} for {path}")

    def usb_candidates(self) -> list[dict[str, Any]]:
        rows = self.collector.op("incidents", status="", by="usb-pipeline-test")["rows"]
        return [r for r in rows if r["kind"] == "usb" and r["agent_id"] == self.agent_id]


@pytest.fixture
def usb_agent(collector: CollectorHarness, tmp_path: Path) -> Iterator[UsbAgent]:
    """An enrolled agent service with the USB sensor (a DSL logged in), under a testbed."""
    _umockdev_available()
    state = StateDir(tmp_path / "agent")
    enrol(state, collector.address, collector.new_token(), collector.ca_path.read_bytes())
    agent_id = load_identity(state).agent_id
    bed = Bed(tmp_path)
    process: psutil.Process | None = None
    try:
        reply = bed.cmd(
            "start",
            argv=[sys.executable, str(HERE / "usb_pipeline_child.py"), "--state", str(state.root),
                  "--accounts", "dsl"],
            out=str(bed.events_file), err=str(tmp_path / "sensor.log"), cwd=str(ROOT),
        )  # fmt: skip
        process = psutil.Process(int(reply["pid"]))
        agent = UsbAgent(bed, collector, agent_id, process)
        agent.wait(lambda: any(e.get("ready") for e in bed.lines()), "the USB sensor to start")
        yield agent
    finally:
        try:
            bed.close()  # SIGTERM to the agent (it ships what it can), then the testbed ends
        finally:
            if process is not None:  # the agent outlived its testbed: it must not outlive us
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
                psutil.wait_procs([process], timeout=10)


def test_usb_decisions_reach_the_collector_verified_and_a_blocked_stick_is_a_candidate(
    usb_agent: UsbAgent,
) -> None:
    bed = usb_agent.bed
    stick = bed.plug("1-1", STICK, (STORAGE,))
    key = bed.plug("1-2", MERILOCK, (STORAGE,), authorized="0")  # found deauthorised
    bed.wait_authorized(stick, "0")
    bed.wait_authorized(key, "1")
    blocked = usb_agent.stored(stick, "INSERTED_BLOCKED")
    allowed = usb_agent.stored(key, "INSERTED_ALLOWED")
    bed.cmd("remove", path=stick)
    removed = usb_agent.stored(stick, "REMOVED")

    for stored in (blocked, allowed, removed):
        assert stored["chain"] == "verified", stored
    b = blocked["event"]
    assert b["severity"] >= 3 and b["account"] == "dsl"
    assert (b["usb"]["vendor_id"], b["usb"]["product_id"]) == ("0781", "5567")
    assert b["usb"]["serial"] == "4C530001" and b["usb"]["interfaces"] == ["08:06:50"]
    a = allowed["event"]
    assert a["usb"]["rule"] == "Merilock encrypted key (DSL)"
    assert a["account"] == "dsl" and a["severity"] == 1
    assert a["usb"]["serial"] == "MERILOCK-DSL-0001"
    r = removed["event"]["usb"]
    assert (r["vendor_id"], r["serial"]) == ("0781", "4C530001")
    assert blocked["seq"] < removed["seq"]
    # One decision per device crossed the wire: no flapping, no re-sent duplicate stored.
    decisions = [e for e in usb_agent.usb_events()
                 if e["event"]["usb"]["action"].startswith("INSERTED")]  # fmt: skip
    assert sorted(e["event"]["usb"]["device_path"] for e in decisions) == sorted([stick, key])
    assert bed.authorized(key) == "1"

    # The blocked stick, and only it, became a candidate whose evidence is the stored event.
    [candidate] = usb_agent.wait(usb_agent.usb_candidates, "a USB incident candidate")
    assert candidate["severity"] == 3 and candidate["status"] == "new"
    assert candidate["account"] == "dsl" and candidate["event_count"] == 1
    assert "SanDisk Cruzer Blade 0781:5567 blocked" in candidate["summary"]
    detail = usb_agent.collector.with_store(lambda s: queries.incident(s.con, candidate["id"]))
    assert detail is not None
    [evidence] = detail["evidence"]
    assert (evidence["seq"], evidence["hash"]) == (blocked["seq"], blocked["hash"])
    assert evidence["event"]["usb"]["action"] == "INSERTED_BLOCKED"
    assert usb_agent.usb_candidates() == [candidate]  # the removal added nothing
