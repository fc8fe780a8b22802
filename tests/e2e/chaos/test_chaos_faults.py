"""The chaos suite's short run: a few rounds of each fault on real processes, each test ending
with every event the PC committed stored once, and no tampering record against the PC.
Every run has a fixed seed and a fresh one (printed; CHAOS_SEED repeats it). The long run is
bench/chaos.py."""

from __future__ import annotations

import pytest

from tests.chaos import faults
from tests.chaos.netfilter import Partition
from tests.conftest import require
from tests.e2e.chaos.conftest import MakeSite

pytestmark = pytest.mark.e2e


def test_collector_killed_at_random_moments(make_site: MakeSite) -> None:
    site = make_site()
    for _ in range(4):
        faults.kill_collector(site)
    site.check(site.settle())


def test_network_delays_stalls_cuts_and_black_holes(make_site: MakeSite) -> None:
    site = make_site()
    for kind in ("delay", "stall", "cut", "blackhole"):
        faults.network(site, kind)
    site.check(site.settle())


def test_a_network_partition(make_site: MakeSite) -> None:
    reason = Partition.unavailable()
    require(reason is None, f"no nftables partition here: {reason}")
    site = make_site()
    for _ in range(2):
        faults.partition(site)
    site.check(site.settle())


def test_the_collectors_disk_fills_and_is_freed(make_site: MakeSite) -> None:
    site = make_site(collector_disk_mb=160)
    for _ in range(2):
        faults.collector_disk_full(site)
    site.check(site.settle())


def test_the_pcs_disk_fills_and_is_freed(make_site: MakeSite) -> None:
    site = make_site(agent_disk_mb=16)
    for _ in range(2):
        faults.agent_disk_full(site)
    site.check(site.settle())


def test_the_outbox_wal_damaged_where_the_agent_can_read_it_back(make_site: MakeSite) -> None:
    site = make_site()
    for _ in range(2):
        faults.damage_wal(site, "superseded")
    assert not site.allowed_lost  # newest images intact: nothing may be lost
    site.check(site.settle())


def test_the_outbox_wal_damaged_anywhere_loses_only_rows_it_destroyed(
    make_site: MakeSite,
) -> None:
    site = make_site()
    for _ in range(2):
        faults.damage_wal(site, "anywhere")
    site.check(site.settle())


def test_the_pcs_clock_shifted_by_hours_and_days(make_site: MakeSite) -> None:
    site = make_site(clock=True)
    for offset in ("+6h", "-3d"):
        faults.clock_shift(site, offset)
    site.check(site.settle())


def test_the_collector_restored_from_an_older_copy(make_site: MakeSite) -> None:
    site = make_site()
    for _ in range(2):
        faults.restore_collector(site)
    site.check(site.settle())
