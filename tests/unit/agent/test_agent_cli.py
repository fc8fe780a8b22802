"""Every command answers bad input with one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.identity import StateDir
from agent.outbox import Outbox
from protos import events_pb2

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith("safeguard-agent: warning")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("safeguard-agent: error: ")
    return lines[0]


@pytest.mark.parametrize("command", [["run"], ["test-alert"], ["status"]])
def test_a_missing_state_folder_is_one_clear_line(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *command, "--state", str(tmp_path / "none"))
    assert code == 1
    assert "does not exist" in one_line_error(err)


@pytest.mark.parametrize("command", [["run"], ["test-alert"], ["status"]])
def test_a_folder_that_is_not_enrolled_says_so(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *command, "--state", str(tmp_path))
    assert code == 1
    assert "not enrolled" in one_line_error(err)


def test_an_unreadable_key_is_one_clear_line(
    enrolled: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    enrolled.key.write_bytes(b"garbage")
    code, _, err = run(capsys, "test-alert", "--state", str(enrolled.root))
    assert code == 1
    assert "agent.key" in one_line_error(err)
    code, _, err = run(capsys, "run", "--state", str(enrolled.root))
    assert code == 1 and "agent.key" in one_line_error(err)


def enroll(tmp_path: Path, ca_file: Path, *extra: str) -> list[str]:
    state = str(tmp_path / "new")
    return ["enroll", "--state", state, "--ca", str(ca_file), *extra]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--collector", "nohost", "--token", "t"], "not HOST:PORT"),
        (["--collector", "h:70000", "--token", "t"], "valid port"),
        (["--collector", "h:1", "--token-file", "/no/such/file"], "cannot read token file"),
        (["--collector", "h:1", "--token", "  "], "token is empty"),
    ],
)
def test_enroll_checks_its_input_before_touching_anything(
    extra: list[str],
    message: str,
    tmp_path: Path,
    ca_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, *enroll(tmp_path, ca_file, *extra))
    assert code == 1
    assert message in one_line_error(err)
    assert not (tmp_path / "new").exists()


def test_enroll_refuses_a_ca_that_is_not_a_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    code, _, err = run(capsys, *enroll(tmp_path, bogus, "--collector", "h:1", "--token", "t"))
    assert code == 1 and "not a PEM certificate" in one_line_error(err)


def test_a_token_on_the_command_line_is_warned_about(
    tmp_path: Path, ca_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *enroll(tmp_path, ca_file, "--collector", "nohost", "--token", "t"))
    assert code == 1 and "process list" in err


def test_a_token_from_stdin_is_read_and_an_empty_one_refused(
    tmp_path: Path,
    ca_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    code, _, err = run(
        capsys, *enroll(tmp_path, ca_file, "--collector", "h:1", "--token-file", "-")
    )
    assert code == 1 and "token is empty" in one_line_error(err)
    assert "process list" not in err


def test_enrolling_an_enrolled_folder_needs_force(
    enrolled: StateDir, ca_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = enrolled.identity.read_bytes()
    code, _, err = run(
        capsys,
        "enroll",
        "--state",
        str(enrolled.root),
        "--collector",
        "127.0.0.1:9",
        "--token",
        "t",
        "--ca",
        str(ca_file),
    )
    assert code == 1 and "--force" in one_line_error(err)
    assert enrolled.identity.read_bytes() == before


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "run", "--state", str(tmp_path), "--heartbeat", "0")[0] == 2
    assert run(capsys, "enroll", "--state", str(tmp_path))[0] == 2
    assert run(capsys, "nonsense")[0] == 2


def test_test_alert_queues_a_severity_1_alert_and_prints_its_id(
    enrolled: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "test-alert", "--state", str(enrolled.root), "--note", "room 4")
    assert code == 0
    event_id = out.strip()
    box = Outbox.open(enrolled.outbox, "ag-unit00000000000000001")
    box.resume(0, b"")
    box.chain_pending(10)
    _, rows = box.chained_after(0, 10, 1 << 20)
    box.close()
    (event,) = [events_pb2.Event.FromString(r.raw) for r in rows]
    assert event.event_id == event_id and event.severity == 1
    assert event.test_alert.note == "room 4" and event.test_alert.requested_by


def test_status_shows_identity_and_outbox(
    enrolled: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "test-alert", "--state", str(enrolled.root))
    code, out, _ = run(capsys, "status", "--state", str(enrolled.root))
    assert code == 0
    assert "ag-unit00000000000000001" in out and "127.0.0.1:9" in out
    assert "pending:      1" in out and "running:      no" in out


def test_status_is_read_only_and_names_a_damaged_outbox_without_setting_it_aside(
    enrolled: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "test-alert", "--state", str(enrolled.root))
    raw = enrolled.outbox.read_bytes()
    enrolled.outbox.write_bytes(raw[:100] + b"\xff" * 4000 + raw[4100:])  # pages damaged
    def files() -> list[str]:  # (SQLite's -wal and -shm side files may appear: no data)
        return sorted(p.name for p in enrolled.root.iterdir() if not p.name.endswith("-shm")
                      and not p.name.endswith("-wal"))  # fmt: skip

    before = files()
    code, out, _ = run(capsys, "status", "--state", str(enrolled.root))
    assert code == 1 and "outbox:       DAMAGED" in out
    assert files() == before  # nothing set aside
    assert enrolled.outbox.read_bytes()[:100] == raw[:100]


def test_status_of_an_outbox_file_with_no_tables_says_so_without_a_traceback(
    enrolled: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    enrolled.outbox.write_bytes(b"")
    code, out, _ = run(capsys, "status", "--state", str(enrolled.root))
    assert code == 1 and "outbox:       DAMAGED (cannot be read" in out


def test_status_of_an_agent_that_never_ran_makes_no_outbox(
    enrolled: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    enrolled.outbox.unlink(missing_ok=True)
    code, out, _ = run(capsys, "status", "--state", str(enrolled.root))
    assert code == 0 and "pending:      0" in out
    assert not enrolled.outbox.exists()


def test_the_module_runs_as_a_program_without_tracebacks(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "status", "--state", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr


def test_a_relative_state_folder_works(
    enrolled: StateDir, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(enrolled.root.parent)
    relative = enrolled.root.name
    code, out, err = run(capsys, "test-alert", "--state", relative)
    assert (code, err) == (0, "")
    code, out, _ = run(capsys, "status", "--state", f"./{relative}")
    assert code == 0 and "pending:      1" in out
