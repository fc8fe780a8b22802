"""Signed policy over the pipeline: a running agent fetches, verifies and applies it live."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.identity import StateDir, load_identity
from agent.sensors.registry import SensorSpec
from agent.service import Service, ServiceConfig
from collector import policy as published
from protos import ingest_pb2
from rules.load import DEFAULT_DIR
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration

Wait = Callable[..., None]


def statuses(collector: CollectorHarness, agent_id: str) -> list[tuple[str, str]]:
    return [
        (e["event"]["status"]["kind"], e["event"]["status"].get("detail", ""))
        for e in collector.events(agent_id)
        if "status" in e["event"]
    ]


def beats(collector: CollectorHarness, agent_id: str) -> list[dict[str, Any]]:
    events = collector.events(agent_id)
    return [e["event"]["heartbeat"] for e in events if "heartbeat" in e["event"]]


class Probe:
    """A real (tiny) sensor: records the policy version it sees, one per keystroke-ish tick."""

    name = "keyboard"

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.seen: list[int] = []

    def run(self, ctx: Any) -> None:
        while not self.stopped.wait(0.05):
            self.seen.append(ctx.policy().version)

    def stop(self) -> None:
        self.stopped.set()


@contextmanager
def running(
    state: StateDir, tmp_path: Path, probes: list[Probe], policy_interval_s: float = 0.3,
    ahead_after_s: float = 3600.0,
) -> Iterator[Service]:
    def make(_settings: object) -> Probe:
        probes.append(Probe())
        return probes[-1]

    service = Service(
        state,
        ServiceConfig(
            heartbeat_s=0.2,
            flush_s=5,
            policy_interval_s=policy_interval_s,
            policy_retry_s=0.2,
            keyboard_socket=tmp_path / "kb.sock",
            ahead_after_s=ahead_after_s,
        ),
        sensors=[SensorSpec("keyboard", make)],
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    try:
        yield service
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive()


def staff_only_rules(tmp_path: Path) -> Path:
    """A copy of the shipped rules in which no profile captures keystrokes."""
    folder = tmp_path / "rules-v2"
    shutil.copytree(DEFAULT_DIR, folder)
    profiles = folder / "profiles.toml"
    text = profiles.read_text().replace('"keyboard", ', "")
    profiles.write_text(text)
    return folder


def small_rules(tmp_path: Path) -> Path:
    """A copy of the shipped rules with one made-up term per category (compiled in 0.1 s)."""
    folder = tmp_path / "rules-small"
    shutil.copytree(DEFAULT_DIR, folder)
    for part in ("classes", "guards"):
        for path in (folder / part).glob("*.toml"):
            path.write_text("")
    for path in (folder / "keywords").glob("*.toml"):
        header = path.read_text().split("[[term]]")[0]
        path.write_text(f'{header}[[term]]\npattern = "zzq{path.stem}"\nweight = 20\n'
                        f'why = "test"\nexample = "zzq{path.stem}"\n')  # fmt: skip
    return folder


def test_a_published_policys_keyboard_matchers_are_made_before_anyone_logs_in(
    collector: CollectorHarness, state: StateDir, tmp_path: Path, wait: Wait
) -> None:
    """agent/matchers_ahead.py, wired into the service: no session asks for a matcher here,
    yet the new policy's keyboard profiles are compiled and kept for the next login."""
    published.publish(collector.data, small_rules(tmp_path))
    # Kept as the last good policy (as enrolment keeps it), so the service starts on it and
    # never has the shipped lists to make first.
    state.policy.write_bytes((collector.data.policy_dir / "bundle-000001.json").read_bytes())
    with running(state, tmp_path, [], ahead_after_s=0.0) as service:
        wait(lambda: service.holder is not None, what="the service's policy")
        assert service.holder is not None and service.holder.version == 1
        active = service.holder.current()
        wait(lambda: active.ready("ks1") and active.ready("ks2"), what="ks1 and ks2 made")
        assert not active._compiled  # kept on disk by the child, not read into the service
        login = active.kept("ks2")  # a login now: read back, no compile
        assert login is not None and login.pattern_count < 10_000  # the small rules


def test_published_policies_apply_live_and_older_ones_are_refused(
    collector: CollectorHarness, state: StateDir, tmp_path: Path, wait: Wait
) -> None:
    agent_id = load_identity(state).agent_id
    probes: list[Probe] = []
    assert published.publish(collector.data).version == 1
    with running(state, tmp_path, probes) as service:
        wait(lambda: service.holder is not None and service.holder.version == 1, what="v1")
        wait(lambda: ("POLICY_APPLIED", "1") in statuses(collector, agent_id), what="applied 1")
        wait(lambda: probes and 1 in probes[-1].seen, what="the sensor to see version 1")
        wait(lambda: any(b.get("policy_version") == "1" for b in beats(collector, agent_id)))
        # version 2 takes keystroke capture away from every profile: the sensor stops, live
        assert published.publish(collector.data, staff_only_rules(tmp_path)).version == 2
        wait(lambda: ("POLICY_APPLIED", "2") in statuses(collector, agent_id), what="applied 2")
        wait(lambda: probes[-1].stopped.is_set(), what="keyboard stopped by policy")
        # (the watchdog reports itself as a line of its own: no sensor is left running)
        wait(lambda: any(b.get("policy_version") == "2"
                         and {x.get("name") for x in b.get("sensors", [])} <= {"watchdog"}
                         for b in beats(collector, agent_id)), what="heartbeat of v2")  # fmt: skip
        # an older (validly signed) bundle is refused and reported
        old = (collector.data.policy_dir / "bundle-000001.json").read_bytes()
        assert service.fetcher is not None and service.holder is not None
        assert not service.fetcher.offer(ingest_pb2.PolicyBundle(version="1", bundle=old))
        assert service.holder.version == 2
        wait(lambda: any(k == "POLICY_REJECTED" and "not newer" in d
                         for k, d in statuses(collector, agent_id)), what="rejection")  # fmt: skip
    assert (state.root / "policy.json").exists()


def test_a_policy_published_while_connected_arrives_with_the_next_ack(
    collector: CollectorHarness, state: StateDir, tmp_path: Path, wait: Wait
) -> None:
    # No periodic check in this test's lifetime and no reconnect (so no new Welcome): only
    # the version named in each ack can bring version 2 to the agent.
    agent_id = load_identity(state).agent_id
    published.publish(collector.data)
    with running(state, tmp_path, [], policy_interval_s=3600) as service:
        wait(lambda: ("POLICY_APPLIED", "1") in statuses(collector, agent_id), what="applied 1")
        assert service.fetcher is not None
        fetches = service.fetcher.fetches
        assert published.publish(collector.data).version == 2
        wait(lambda: ("POLICY_APPLIED", "2") in statuses(collector, agent_id), what="applied 2")
        assert service.fetcher.fetches == fetches + 1  # one fetch, however many acks named it
        assert service.shipper is not None and service.shipper.sessions == 1


def test_a_forged_bundle_on_disk_is_rejected_and_the_shipped_policy_arrives(
    collector: CollectorHarness, state: StateDir, tmp_path: Path, wait: Wait
) -> None:
    agent_id = load_identity(state).agent_id
    published.publish(collector.data)
    good = (collector.data.policy_dir / "current.json").read_bytes()
    forged = good.replace(b'"signature":"', b'"signature":"AAAA', 1)  # a pupil's edit
    (state.root / "policy.json").write_bytes(forged)
    with running(state, tmp_path, []) as service:
        wait(lambda: service.holder is not None and service.holder.version == 1, what="v1")
        wait(lambda: ("POLICY_APPLIED", "1") in statuses(collector, agent_id), what="applied")
    seen = statuses(collector, agent_id)
    rejected = [d for k, d in seen if k == "POLICY_REJECTED"]
    assert rejected and "policy.json.rejected" in rejected[0]
    assert [k for k, _ in seen].index("POLICY_REJECTED") < seen.index(("POLICY_APPLIED", "1"))
    assert (state.root / "policy.json.rejected").read_bytes() == forged
    assert (state.root / "policy.json").read_bytes() == good


def test_collector_unreachable_keeps_the_last_good_policy(
    collector: CollectorHarness, state: StateDir, tmp_path: Path, wait: Wait
) -> None:
    published.publish(collector.data)
    with running(state, tmp_path, []) as service:
        wait(lambda: service.holder is not None and service.holder.version == 1, what="v1")
    collector.stop()
    probes: list[Probe] = []
    with running(state, tmp_path, probes) as service:
        wait(lambda: service.fetcher is not None, what="the fetcher")
        fetcher = service.fetcher
        assert fetcher is not None
        wait(lambda: fetcher.fetches >= 2 and fetcher.last_error is not None, what="failures")
        assert service.holder is not None and service.holder.version == 1
        wait(lambda: probes and 1 in probes[-1].seen, what="sensors on the last good policy")
