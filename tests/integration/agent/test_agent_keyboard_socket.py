"""Two agents on one machine (a demo beside the real one) must not take each other's keyboard
socket: the second is refused with a reason, and the first keeps its socket."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.policy import ActivePolicy
from agent.sensors import SensorContext, SensorUnavailable
from agent.sensors.keyboard_broker import KeyboardBroker
from rules.load import load_policy

pytestmark = pytest.mark.integration


def test_a_second_agent_does_not_take_or_remove_the_first_agents_socket(tmp_path: Path) -> None:
    path = tmp_path / "run" / "keyboard.sock"
    active = ActivePolicy(0, load_policy())
    ctx = SensorContext(emit=lambda e: None, policy=lambda: active, state_dir=tmp_path)
    first = KeyboardBroker(path)
    runner = threading.Thread(target=first.run, args=(ctx,), daemon=True)
    runner.start()
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    inode = path.stat().st_ino
    with pytest.raises(SensorUnavailable, match="another agent is already listening"):
        KeyboardBroker(path).run(ctx)
    assert path.stat().st_ino == inode  # still the first agent's socket
    first.stop()
    runner.join(10)
    assert not path.exists()  # the first agent removes its own socket when it stops
