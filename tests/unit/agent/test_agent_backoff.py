"""The shipper's retry delays: exponential with full jitter, and slow ones for refusals."""

from __future__ import annotations

import random

import pytest

from agent.shipper import Backoff

pytestmark = pytest.mark.unit


def test_backoff_is_full_jitter_doubling_to_a_cap_and_resets() -> None:
    backoff = Backoff(0.5, 60.0, random.Random(7))
    ceilings = [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    delays = [backoff.next_delay() for _ in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[7:]) > 8  # really reaches towards the cap
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_refusals_are_retried_slowly_with_jitter() -> None:
    backoff = Backoff(0.5, 60.0, random.Random(3))
    delays = {backoff.slow(300.0) for _ in range(50)}
    assert all(150.0 <= d <= 300.0 for d in delays) and len(delays) == 50
