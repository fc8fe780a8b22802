"""The audit and record chains' ends cannot be cut off quietly, and `safeguard-collector verify`
checks everything (issue 16, items 2 and 3), on a real collector with its console."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.integration.console.support import Client, ConsoleHarness, wait_for
from tests.integration.console.test_incident_records import worked_incident
from tests.processes import BIN

pytestmark = pytest.mark.integration


def verify(console: ConsoleHarness, *extra: str) -> subprocess.CompletedProcess[str]:
    """The CLI, through the running collector's admin socket."""
    return subprocess.run([str(BIN / "safeguard-collector"), "verify", "--data",
                           str(console.data.root), *extra],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_verify_checks_everything_and_says_what_it_checked(console: ConsoleHarness) -> None:
    worked_incident(console)
    console.running.incidents.check_chains_now()  # type: ignore[union-attr]
    done = verify(console)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("ok     events: 1 of 1 stored events of 1 agents verify",
                 "ok     audit:", "ok     records:", "incidents match their records",
                 "ok     checkpoint:"):  # fmt: skip
        assert line in done.stdout, done.stdout


def test_deleting_the_newest_audit_entries_is_caught_and_the_console_keeps_working(
    console: ConsoleHarness,
) -> None:
    iid = worked_incident(console)
    runtime = console.running.incidents
    assert runtime is not None and runtime.check_chains_now() == []
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.get(f"/incidents/{iid}/export.json")
    given = json.loads(page)["chain_checkpoint"]["heads"]
    console.with_store(lambda s: s.con.execute(
        "DELETE FROM audit WHERE seq > (SELECT max(seq) - 3 FROM audit)"))  # fmt: skip
    console.with_store(lambda s: s.con.execute(
        "DELETE FROM incident_log WHERE seq = (SELECT max(seq) FROM incident_log)"))  # fmt: skip
    done = verify(console)
    assert done.returncode == 1 and "FAILED checkpoint" in done.stdout
    assert "newest entries are missing" in done.stdout
    # The console says so on every page, and keeps answering (before: 500s after a restart).
    assert runtime.check_chains_now()
    for path in ("/incidents", f"/incidents/{iid}", "/audit", "/agents"):
        status, page = dsl.get(path)
        assert status == 200 and "shorter than their last checkpoint" in page, path
    console.stop()
    console.start()
    dsl = Client(console.url)
    dsl.login("dsl")
    status, page = dsl.get("/incidents")
    assert status == 200 and "shorter than their last checkpoint" in page
    # Rolling the checkpoint file back too is caught by the copy in the export.
    (console.data.root / "anchors.json").unlink()
    heads = [f"{name}:{text}" for name, text in given.items()]
    done = verify(console, *[a for h in heads for a in ("--head", h)])
    assert done.returncode == 1 and "FAILED given heads" in done.stdout, done.stdout


def test_a_restore_on_purpose_is_acknowledged_in_the_audit_log(console: ConsoleHarness) -> None:
    worked_incident(console)
    runtime = console.running.incidents
    assert runtime is not None and runtime.check_chains_now() == []
    console.with_store(lambda s: s.con.execute(
        "DELETE FROM audit WHERE seq > (SELECT max(seq) - 2 FROM audit)"))  # fmt: skip
    assert runtime.check_chains_now()
    done = subprocess.run([str(BIN / "safeguard-collector"), "acknowledge-restore", "--data",
                           str(console.data.root), "--reason", "restored Monday's backup"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "restore acknowledged" in done.stdout, done.stderr
    assert runtime.check_chains_now() == []
    assert verify(console).returncode == 0
    dsl = Client(console.url)
    dsl.login("dsl")
    page = dsl.get("/audit")[1]
    assert "restore_acknowledged" in page and re.search(r"restored Monday&#39;s backup", page)


def test_every_pc_keeps_a_checkpoint_and_hands_it_back(console: ConsoleHarness) -> None:
    from protos import ingest_pb2_grpc
    from tests import agentsim

    worked_incident(console)
    runtime = console.running.incidents
    assert runtime is not None and runtime.check_chains_now() == []
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(console.address, console.ca_path))
    pc = agentsim.SimAgent(*agentsim.enrol(stub, console.new_token()))
    session = agentsim.Session(stub, pc)
    kept = session.welcome.checkpoint  # what the agent keeps in STATE/shipping.json
    session.close()
    assert kept == (console.data.root / "anchors.json").read_bytes()
    # Someone cuts the chains' ends and rolls the checkpoint beside the database back too.
    cut = "DELETE FROM incident_log WHERE seq > (SELECT max(seq) - 2 FROM incident_log)"
    console.with_store(lambda s: s.con.execute(cut))
    (console.data.root / "anchors.json").unlink()
    assert runtime.check_chains_now() == []  # the file alone can no longer tell
    pc.witnessed = kept
    agentsim.Session(stub, pc).close()  # the PC's next connection hands its copy back
    wait_for(lambda: any(pc.agent_id in p for p in runtime.chain_problems))
    assert "newest entries are missing" in " ".join(runtime.chain_problems)
    dsl = Client(console.url)
    dsl.login("dsl")
    assert f"PC {pc.agent_id} kept a checkpoint" in dsl.get("/incidents")[1]
    # A restore made on purpose is acknowledged: the PCs' older copies no longer count.
    done = subprocess.run([str(BIN / "safeguard-collector"), "acknowledge-restore", "--data",
                           str(console.data.root), "--reason", "test"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert runtime.check_chains_now() == []
    agentsim.Session(stub, pc).close()
    assert runtime.check_chains_now() == []
