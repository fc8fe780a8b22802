"""The whole spine as a technician sees it: real `safeguard-collector serve` and
`safeguard-agent run` processes, killed and restarted, with every event counted."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.outbox import Outbox
from protos import events_pb2
from tests.processes import BIN, CollectorProcess, run

pytestmark = pytest.mark.e2e


def wait_until(check, timeout: float = 90.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Site:
    """A collector and one enrolled agent, as `scripts/demo` makes them."""

    def __init__(self, root: Path) -> None:
        self.data, self.state = root / "collector", root / "agent"
        run("safeguard-collector", "init", "--data", self.data)
        self.collector = CollectorProcess(self.data)
        self.collector.start()
        token = run("safeguard-collector", "token", "--data", self.data).stdout
        run("safeguard-agent", "enroll", "--state", self.state, "--collector",
            self.collector.address, "--token-file", "-", "--ca", self.data / "ca.pem",
            stdin=token)
        self.agent_id = json.loads((self.state / "identity.json").read_text())["agent_id"]
        self.agent: subprocess.Popen[str] | None = None
        self.writers: list[Writer] = []  # killed at teardown even when a test fails

    def start_agent(self) -> None:
        self.agent = subprocess.Popen(
            [str(BIN / "safeguard-agent"), "run", "--state", str(self.state),
             "--log-level", "warning"], text=True)

    def stop_agent(self, sig_kill: bool = False) -> None:
        if self.agent is not None:
            (self.agent.kill if sig_kill else self.agent.terminate)()
            self.agent.wait(60)
            self.agent = None

    def test_alerts(self) -> list[dict]:  # type: ignore[type-arg]
        out = run("safeguard-collector", "events", "--data", self.data, "--agent",
                  self.agent_id, "--limit", "1000000", "--format", "json").stdout
        return [e for e in map(json.loads, out.splitlines()) if "test_alert" in e["event"]]

    def tampering(self) -> str:
        return run("safeguard-collector", "tampering", "--data", self.data, "--format",
                   "json").stdout


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    try:
        yield s
    finally:
        for writer in s.writers:
            writer.stop(wait_for_more=False)
        s.stop_agent()
        s.collector.stop()


def queue(state: Path, agent_id: str, n: int) -> set[str]:
    """Put n events straight into the agent's outbox, as a sensor would."""
    box = Outbox.open(state / "outbox.sqlite", agent_id)
    try:
        return {box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert(
            requested_by="e2e", note=str(i)))) for i in range(n)}
    finally:
        box.close()


def test_a_test_alert_is_listed_by_the_collector_with_its_chain_verified(site: Site) -> None:
    site.start_agent()
    event_id = run("safeguard-agent", "test-alert", "--state", site.state).stdout.strip()
    wait_until(lambda: any(e["event"]["event_id"] == event_id for e in site.test_alerts()),
               what="the test alert")
    [alert] = [e for e in site.test_alerts() if e["event"]["event_id"] == event_id]
    assert alert["chain"] == "verified"
    text = run("safeguard-collector", "events", "--data", site.data).stdout
    assert "test_alert" in text and "chain=verified" in text
    # The PC keeps the collector's signed checkpoint of its chains, to hand back next time.
    kept = json.loads((site.state / "shipping.json").read_text())["checkpoint"]
    assert json.loads(kept)["heads"]["audit"]


def test_collector_down_while_the_agent_keeps_producing_then_back(site: Site) -> None:
    site.start_agent()
    before = queue(site.state, site.agent_id, 50)
    wait_until(lambda: len(site.test_alerts()) == 50, what="the first 50")
    site.collector.stop()
    during = queue(site.state, site.agent_id, 500)  # the agent holds these meanwhile
    ids = {run("safeguard-agent", "test-alert", "--state", site.state).stdout.strip()}
    time.sleep(1.0)  # let the agent fail to connect at least once; correctness does not need it
    site.collector.start()
    wanted = before | during | ids
    wait_until(lambda: len(site.test_alerts()) >= len(wanted), what="every event")
    got = [e["event"]["event_id"] for e in site.test_alerts()]
    assert sorted(got) == sorted(wanted)  # all there, none twice
    assert site.tampering() == ""


def test_collector_killed_mid_stream_then_restarted_stores_each_event_once(site: Site) -> None:
    # A writer keeps producing throughout, so the kill always lands while the agent is
    # shipping (whatever the machine's speed), and some events are only ever sent afterwards.
    writer = Writer(site)
    site.start_agent()
    wait_until(lambda: len(site.test_alerts()) > 0, what="the first batches")
    site.collector.kill()
    partial = len(site.test_alerts())
    site.collector.start()
    wanted = writer.stop()
    wait_until(lambda: len(site.test_alerts()) >= len(wanted), timeout=180, what="every event")
    got = [e["event"]["event_id"] for e in site.test_alerts()]
    assert partial < len(wanted)
    assert len(got) == len(set(got)) == len(wanted) and set(got) == wanted
    assert site.tampering() == ""


class Writer:
    """A separate process putting events into the agent's outbox until stopped (or killed);
    it prints each event's id once its put has committed."""

    def __init__(self, site: Site) -> None:
        outbox = str(site.state / "outbox.sqlite")
        self.proc = subprocess.Popen(
            [str(BIN / "python"), "-m", "tests.outbox_writer", outbox, site.agent_id],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        site.writers.append(self)
        self.ids: set[str] = set()
        self._reader = threading.Thread(target=self._read)  # a full pipe would stall the writer
        self._reader.start()
        wait_until(lambda: len(self.ids) >= 200, what="the writer's first events")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.ids.add(line.strip())

    def stop(self, wait_for_more: bool = True) -> set[str]:
        """SIGKILL, possibly mid-write; returns every id whose put was reported committed."""
        if self.proc.returncode is not None:
            return set(self.ids)
        if wait_for_more:
            count = len(self.ids)
            wait_until(lambda: len(self.ids) >= count + 200, what="the writer to go on")
        self.proc.kill()
        self.proc.wait(30)
        self._reader.join(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return set(self.ids)


def test_agent_killed_mid_write_and_mid_ship_loses_and_repeats_nothing(site: Site) -> None:
    wanted = queue(site.state, site.agent_id, 5_000)
    site.start_agent()
    wait_until(lambda: len(site.test_alerts()) > 0, what="the first batches")
    site.stop_agent(sig_kill=True)
    # A writer killed -9 in the middle of its puts: what it committed must all arrive.
    committed = Writer(site).stop()
    site.start_agent()
    wanted |= committed
    wait_until(lambda: len(site.test_alerts()) >= len(wanted), timeout=180, what="every event")
    got = [e["event"]["event_id"] for e in site.test_alerts()]
    assert len(got) == len(set(got))
    assert wanted <= set(got)  # a put killed before it printed may also have committed
    assert site.tampering() == ""


def test_a_collector_restored_from_an_older_copy_gets_back_what_it_had_acknowledged(
    site: Site, tmp_path: Path
) -> None:
    site.start_agent()
    before = queue(site.state, site.agent_id, 50)
    wait_until(lambda: len(site.test_alerts()) == 50, what="the first 50")
    site.collector.stop()
    backup = tmp_path / "backup"
    backup.mkdir()
    for part in site.data.glob("collector.duckdb*"):
        shutil.copy2(part, backup / part.name)
    site.collector.start()
    after = queue(site.state, site.agent_id, 20)  # acknowledged, so the PC no longer needs them
    wait_until(lambda: len(site.test_alerts()) == 70, what="20 more")
    site.collector.stop()
    for part in site.data.glob("collector.duckdb*"):
        part.unlink()
    for part in backup.iterdir():
        shutil.copy2(part, site.data / part.name)  # the older copy, as a restore puts it back
    site.collector.start()
    wanted = before | after
    wait_until(lambda: len(site.test_alerts()) >= len(wanted), what="the 20 again")
    got = [e["event"]["event_id"] for e in site.test_alerts()]
    assert len(got) == len(set(got)) and set(got) == wanted
    assert site.tampering() == ""  # no gap recorded against the PC
