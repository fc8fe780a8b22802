"""The agent against the real collector (tests/harness.py): enrolled states, a running shipper."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from agent.enrol import enrol
from agent.identity import Identity, StateDir, load_ca, load_identity, load_key
from agent.outbox import Outbox
from agent.shipper import Shipper, ShipperConfig
from tests.harness import CollectorHarness

Wait = Callable[..., None]


def wait_until(condition: Callable[[], bool], timeout: float = 120.0, what: str = "") -> None:
    """Poll a condition (cheaply) until it holds; fail with `what` after `timeout` seconds.
    The default is generous: loading a policy takes seconds of CPU, many more on a loaded
    machine, and only a failing test waits it out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)


@pytest.fixture
def state(collector: CollectorHarness, tmp_path: Path) -> StateDir:
    """A state folder enrolled with the running collector."""
    state = StateDir(tmp_path / "agent")
    enrol(state, collector.address, collector.new_token(), collector.ca_path.read_bytes())
    return state


def fast_config(state: StateDir, ident: Identity, **overrides: float) -> ShipperConfig:
    values: dict[str, float] = {
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.5,
        "refused_retry_s": 0.5,
        "poll_s": 0.05,
    }
    values.update(overrides)
    return ShipperConfig(
        address=ident.collector,
        ca_pem=load_ca(state, ident),
        agent_id=ident.agent_id,
        agent_version="test",
        hostname="test-host",
        **values,  # type: ignore[arg-type]
    )


@contextmanager
def shipping(
    state: StateDir, outbox: Outbox | None = None, **overrides: float
) -> Iterator[tuple[Shipper, Outbox]]:
    """Run a Shipper in a thread for the duration; stops it and closes the outbox after."""
    ident = load_identity(state)
    box = outbox or Outbox.open(state.outbox, ident.agent_id)
    shipper = Shipper(box, load_key(state, ident), fast_config(state, ident, **overrides))
    thread = threading.Thread(target=shipper.run, name="test-shipper", daemon=True)
    thread.start()
    try:
        yield shipper, box
    finally:
        shipper.stop()
        thread.join(30)
        assert not thread.is_alive(), "shipper did not stop"
        box.close()


@pytest.fixture
def wait() -> Wait:
    """wait(condition, timeout=30, what=""): poll until it holds, or fail the test."""
    return wait_until


@pytest.fixture
def ship() -> Callable[..., AbstractContextManager[tuple[Shipper, Outbox]]]:
    """ship(state, outbox=None, **config): a running Shipper for the `with` block."""
    return shipping
