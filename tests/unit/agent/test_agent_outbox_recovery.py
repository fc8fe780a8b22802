"""A corrupt outbox is kept aside, a new one started, and the recovery itself is an event."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.outbox import Outbox
from protos import events_pb2

pytestmark = pytest.mark.unit

AGENT = "ag-test0000000000000003"


def only_event(box: Outbox) -> events_pb2.Event:
    box.resume(0, b"")
    box.chain_pending(10)
    _, rows = box.chained_after(0, 10, 1 << 20)
    assert len(rows) == 1
    return events_pb2.Event.FromString(rows[0].raw)


def test_garbage_is_moved_aside_with_its_wal_and_shm(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    garbage = b"this is not SQLite" * 500
    path.write_bytes(garbage)
    Path(f"{path}-wal").write_bytes(b"old wal")
    Path(f"{path}-shm").write_bytes(b"old shm")
    box = Outbox.open(path, AGENT)
    kept = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert sorted(p.name.rsplit("-", 1)[-1] for p in kept if p.name.endswith(("wal", "shm"))) == [
        "shm",
        "wal",
    ]
    main = next(p for p in kept if not p.name.endswith(("-wal", "-shm")))
    assert main.read_bytes() == garbage  # kept exactly as it was, for a technician to inspect
    assert Path(f"{main}-wal").read_bytes() == b"old wal"
    event = only_event(box)
    assert event.status.kind == events_pb2.AgentStatus.OUTBOX_RECOVERED
    assert event.status.detail == str(main)
    box.close()


def test_a_truncated_database_is_recovered_too(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox.open(path, AGENT)
    for i in range(300):
        box.put(events_pb2.Event(test_alert=events_pb2.TestAlert(note=f"{i:04d}" * 50)))
    box.close()  # checkpoints the WAL into the main file
    data = path.read_bytes()
    assert len(data) > 8192
    path.write_bytes(data[: len(data) // 3])
    recovered = Outbox.open(path, AGENT)
    assert only_event(recovered).status.kind == events_pb2.AgentStatus.OUTBOX_RECOVERED
    recovered.close()


def test_recovery_twice_in_one_second_keeps_both_files(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    for n in range(2):
        path.write_bytes(b"garbage %d" % n * 100)
        Outbox.open(path, AGENT).close()
    kept = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and p.name[-4:] != "-wal"]
    contents = {p.read_bytes()[:9] for p in kept if not p.name.endswith("-shm")}
    assert contents == {b"garbage 0", b"garbage 1"}


def test_an_outbox_at_a_relative_path_opens_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Outbox.open(Path("outbox.sqlite"), AGENT).close()
    Outbox.open(Path("outbox.sqlite"), AGENT).close()  # the probe runs on an existing file
    Path("outbox.sqlite").write_bytes(b"garbage" * 100)
    box = Outbox.open(Path("outbox.sqlite"), AGENT)
    assert only_event(box).status.kind == events_pb2.AgentStatus.OUTBOX_RECOVERED
    box.close()
