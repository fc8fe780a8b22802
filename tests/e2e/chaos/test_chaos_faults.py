"""The chaos suite's short run: a few rounds of each fault on real processes, each test ending
with every event the PC committed stored once, and no tampering record against the PC.
Each fault has its own test with a fixed seed; one test draws from all of them with a fresh
seed each run (printed; CHAOS_SEED=N repeats a run). The long run is bench/chaos.py."""

from __future__ import annotations

import pytest

from tests.chaos import damage, faults
from tests.chaos.netfilter import Partition
from tests.chaos.site import rounds
from tests.conftest import require
from tests.e2e.chaos.conftest import MakeSite

# A site (collector, agent, proxy, writers) through faults and back: 30 s alone, ten times
# that on a CI machine running two workers of other e2e tests; the global 300 s is a hang guard.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def test_collector_killed_at_random_moments(make_site: MakeSite) -> None:
    site = make_site()
    for _ in range(3):
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


MIXED = list(faults.FAULTS)


@pytest.mark.random_seed
def test_faults_of_every_kind_drawn_at_random(make_site: MakeSite) -> None:
    require(Partition.unavailable() is None, "no nftables partition here")
    site = make_site(collector_disk_mb=160, agent_disk_mb=64, clock=True)
    for kind in rounds(site.rng, MIXED, 8):
        faults.FAULTS[kind](site)
    site.check(site.settle())


def test_a_damaged_wal_on_a_full_disk_does_not_stop_the_agent(make_site: MakeSite) -> None:
    site = make_site(agent_disk_mb=64)
    assert site.agent is not None
    site.wait_for_writes(200)
    site.agent.kill()
    site.wait_for_writes(300)
    site.stop_writers()
    wal = site.outbox.with_name(site.outbox.name + "-wal")
    assert damage.flip(wal, site.outbox, site.rng, 2, "superseded") is not None
    site.mounts["agent"].fill()
    site.agent.start()
    started = site.log_count("agent.started")
    site.wait(lambda: site.log_count("agent.started") > started, 120, "the agent to start")
    site.mounts["agent"].free()
    site.check(site.settle())
