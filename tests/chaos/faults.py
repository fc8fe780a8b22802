"""One round of each fault, on a ChaosSite whose agent runs and whose writer is putting.

Each round starts and ends with the pipeline able to run (the fault healed), leaves the
counting to the site, and says in the site's fault counter what it did. Moments are drawn from
the site's seeded RNG and measured in puts, not seconds, so a slow machine sees the same
sequence of faults relative to the work, and every wait is for a condition.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.chaos import damage
from tests.chaos.netfilter import Partition
from tests.chaos.proxy import Mode
from tests.chaos.site import ChaosSite


def _collector(site: ChaosSite):  # type: ignore[no-untyped-def]
    assert site.collector is not None
    return site.collector


def kill_collector(site: ChaosSite) -> None:
    """SIGKILL at a random moment (in puts), then a restart, maybe after more puts."""
    site.wait_for_writes(site.rng.randint(20, 400))
    _collector(site).kill()
    if site.rng.random() < 0.5:
        site.wait_for_writes(site.rng.randint(1, 200))
    _collector(site).start()
    site.faults.add("collector_kill")


def network(site: ChaosSite, kind: str | None = None) -> None:
    """The proxy delays, stalls, cuts or black-holes for a while, then passes again."""
    assert site.proxy is not None
    kind = kind or site.rng.choice(["delay", "stall", "cut", "blackhole"])
    site.wait_for_writes(site.rng.randint(20, 200))
    if kind == "cut":
        site.proxy.cut()
    else:
        site.proxy.set_mode(Mode(kind), delay_s=site.rng.uniform(0.05, 0.5))
        site.wait_for_writes(site.rng.randint(100, 400))
        site.proxy.set_mode(Mode.PASS)
    site.faults.add(f"network_{kind}")


def partition(site: ChaosSite) -> None:
    """nftables drops every packet between agent and collector for a while."""
    assert site.proxy is not None
    if site.partition is None:
        site.partition = Partition(site.proxy.port)
    site.wait_for_writes(site.rng.randint(20, 200))
    site.partition.cut()
    site.wait_for_writes(site.rng.randint(200, 600))
    site.partition.heal()
    site.faults.add("partition")


def collector_disk_full(site: ChaosSite) -> None:
    """The collector's disk fills: it must refuse (not acknowledge) and the agent keep."""
    disk = site.mounts["collector"]
    refused = site.log_count("ingest.commit_failed", "collector")
    disk.fill()
    site.wait(lambda: site.log_count("ingest.commit_failed", "collector") > refused, 180,
              "the collector to refuse a commit on its full disk")  # fmt: skip
    site.wait_for_writes(site.rng.randint(50, 300))
    disk.free()
    site.faults.add("collector_disk_full")


ABSORBED = 2000  # puts that succeed on a full disk before the round counts it absorbed


def agent_disk_full(site: ChaosSite) -> None:
    """The PC's disk fills: puts fail meanwhile; what committed must all arrive.

    SQLite may still have room inside its own files (free pages, a -wal it reuses after a
    checkpoint), so puts can go on succeeding on a full disk for a while: that is a fault
    absorbed, not one missed. The round ends at the first failed put or after ABSORBED puts."""
    disk = site.mounts["agent"]
    failed = sum(w.failed for w in site.writers)
    written = site.writer_ids()
    disk.fill()
    site.wait(lambda: sum(w.failed for w in site.writers) > failed
              or site.writer_ids() - written >= ABSORBED, 300,
              "a put to fail on the PC's full disk, or the disk full absorbed")  # fmt: skip
    hit = sum(w.failed for w in site.writers) > failed
    disk.free()
    site.wait_for_writes(site.rng.randint(20, 200))
    site.faults.add("agent_disk_full" if hit else "agent_disk_full_absorbed")


def damage_wal(site: ChaosSite, where: str = "superseded") -> None:
    """With the agent and writer SIGKILLed, flip bytes of the outbox -wal; start again."""
    assert site.agent is not None
    site.wait_for_writes(site.rng.randint(50, 300))
    site.agent.kill()
    site.wait_for_writes(site.rng.randint(200, 500))  # the -wal grows with the agent away
    site.stop_writers()
    wal = site.outbox.with_name(site.outbox.name + "-wal")
    hit = damage.flip(wal, site.outbox, site.rng, site.rng.randint(1, 4), where)
    if hit is not None:
        site.allowed_lost |= hit.at_risk
        site.faults.add(f"wal_damage_{where}")
    site.agent.start()
    site.start_writer()


def clock_shift(site: ChaosSite, offset: str | None = None) -> None:
    """The PC's clock jumps by hours or days; a new handshake is forced (the proxy cuts).
    Behind by days, TLS fails (the certificate is not yet valid by the PC's clock) until the
    clock is set right again."""
    assert site.agent is not None and site.agent.clock is not None and site.proxy is not None
    offset = offset or site.rng.choice(["+6h", "+2d", "-5h", "-3d"])
    failed = site.log_count("ship.tls_failed")
    site.agent.clock.set(offset)
    site.proxy.cut()
    if offset == "-3d":
        site.wait(lambda: site.log_count("ship.tls_failed") > failed, 180,
                  "the agent to report TLS failing under a clock 3 days behind")  # fmt: skip
    site.wait_for_writes(site.rng.randint(100, 300))
    site.agent.clock.set("+0")
    site.proxy.cut()  # a stream opened under the wrong clock is fine; start afresh anyway
    site.faults.add(f"clock_{offset}")


def restore_collector(site: ChaosSite) -> None:
    """Stop, copy the database aside, run on, stop, put the older copy back, start."""
    collector = _collector(site)
    site.wait_for_writes(site.rng.randint(50, 300))
    collector.stop()
    copy = site.snapshot(f"r{collector.starts}")
    collector.start()
    site.wait_for_writes(site.rng.randint(100, 500))
    if site.rng.random() < 0.5:
        collector.kill()
    else:
        collector.stop()
    site.restore(copy)
    collector.start()
    site.faults.add("collector_restore")


FAULTS: dict[str, Callable[[ChaosSite], None]] = {
    "collector_kill": kill_collector,
    "network": network,
    "partition": partition,
    "collector_disk_full": collector_disk_full,
    "agent_disk_full": agent_disk_full,
    "wal_damage": damage_wal,
    "wal_damage_anywhere": lambda site: damage_wal(site, "anywhere"),
    "clock": clock_shift,
    "collector_restore": restore_collector,
}
