"""A browser detection the whole way: real firefox-esr history, read by the browser sensor
inside the real agent service, shipped signed to the real collector, stored with its chain
verified. (The sensor's own behaviour is in test_agent_browser_real.py.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.enrol import enrol
from agent.identity import StateDir, load_identity
from agent.sensors import Sensor
from agent.sensors.browser import BrowserSensor
from agent.sensors.registry import SensorSettings, SensorSpec
from agent.service import Service, ServiceConfig
from tests.conftest import require_tool
from tests.e2e.agent_sensors.test_agent_browser_real import (
    firefox_profile,
    firefox_visit,
    home,  # noqa: F401 -- a fixture, used by name
    web,  # noqa: F401 -- a fixture, used by name
)
from tests.harness import CollectorHarness

pytestmark = pytest.mark.e2e


def url_events(collector: CollectorHarness, agent_id: str) -> list[dict[str, Any]]:
    return [e for e in collector.events(agent_id) if "url" in e["event"]]


def test_a_visit_to_a_listed_site_reaches_the_collector_signed_and_chained(
    collector: CollectorHarness, home: Path, web: int, tmp_path: Path  # noqa: F811
) -> None:
    require_tool("firefox-esr")
    state = StateDir(tmp_path / "agent")
    enrol(state, collector.address, collector.new_token(), collector.ca_path.read_bytes())
    agent_id = load_identity(state).agent_id
    made: list[BrowserSensor] = []

    def browser(settings: SensorSettings) -> Sensor:
        made.append(BrowserSensor(homes=lambda: [home], rescan_s=30,
                                  state_dir=settings.state_root))  # fmt: skip
        return made[-1]

    profile = firefox_profile(home)
    service = Service(state, ServiceConfig(heartbeat_s=0.5, flush_s=10),
                      sensors=[SensorSpec("browser", browser)])  # fmt: skip
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not (made and made[0].ready.is_set()):  # history before the first scan is not sent
            assert runner.is_alive() and time.monotonic() < deadline, "sensor did not start"
            time.sleep(0.05)
        firefox_visit(profile, f"http://www.bbc.co.uk:{web}/news")
        firefox_visit(profile, f"http://www.bet365.com:{web}/")
        while not url_events(collector, agent_id):
            assert runner.is_alive() and time.monotonic() < deadline + 60, "no url event"
            time.sleep(0.1)
    finally:
        stop.set()
        runner.join(60)
    [stored] = url_events(collector, agent_id)
    assert stored["chain"] == "verified"
    url = stored["event"]["url"]
    assert url["category"] == "gambling" and url["browser"] == "firefox"
    assert url["url"].startswith("http://www.bet365.com:")
    assert url["previous_urls"] == [f"http://www.bbc.co.uk:{web}/news"]
    # The innocent visit itself never left the PC (no full browsing log by default).
    assert not any("bbc" in str(e["event"].get("url", {}).get("url", ""))
                   for e in collector.events(agent_id))  # fmt: skip
