"""`safeguard-agent enroll` against the real collector: good, wrong, expired, used-up tokens."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.cli import main
from agent.identity import StateDir, load_ca, load_identity, load_key
from collector import policy as published
from rules.bundle import load_last_good
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration


def enroll(
    collector: CollectorHarness, state: Path, token: str, *extra: str, ca: Path | None = None
) -> list[str]:
    token_file = state.parent / f"{state.name}.token"
    token_file.write_text(token + "\n")
    return [
        "enroll", "--state", str(state), "--collector", collector.address,
        "--token-file", str(token_file), "--ca", str(ca or collector.ca_path), *extra,
    ]  # fmt: skip


def test_enrolment_writes_a_private_key_an_identity_and_the_pinned_ca(
    collector: CollectorHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "state"
    assert main(enroll(collector, root, collector.new_token())) == 0
    state = StateDir(root)
    ident = load_identity(state)
    assert ident.agent_id in capsys.readouterr().out
    assert root.stat().st_mode & 0o777 == 0o700
    assert state.key.stat().st_mode & 0o777 == 0o600
    assert state.identity.stat().st_mode & 0o777 == 0o600
    assert load_ca(state, ident) == collector.ca_path.read_bytes()
    load_key(state, ident)
    assert ident.collector == collector.address
    assert len(bytes.fromhex(ident.policy_public_key)) == 32
    agents = collector.op("agents")
    assert [a["agent_id"] for a in agents] == [ident.agent_id]
    assert json.loads(state.identity.read_text())["format"] == 1


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        ("wrong", "not known to this collector"),
        ("expired", "has expired"),
        ("used_up", "used up"),
    ],
)
def test_a_refused_token_is_a_clear_error_and_leaves_nothing(
    collector: CollectorHarness,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spoil: str,
    message: str,
) -> None:
    token = collector.new_token(uses=1)
    if spoil == "wrong":
        token = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    elif spoil == "expired":
        token_id = token.split("_")[1]
        collector.with_store(
            lambda s: s.con.execute(
                "UPDATE tokens SET expires_ms = 1 WHERE token_id = ?", [token_id]
            )
        )
    else:
        assert main(enroll(collector, tmp_path / "first", token)) == 0
    capsys.readouterr()
    root = tmp_path / "state"
    assert main(enroll(collector, root, token)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "enrolment refused" in err and message in err
    assert not root.exists()


def test_a_collector_whose_certificate_is_not_from_the_pinned_ca_is_not_trusted(
    collector: CollectorHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = CollectorHarness(tmp_path / "other-school")  # a different school's CA
    root = tmp_path / "state"
    assert main(enroll(collector, root, collector.new_token(), ca=other.ca_path)) == 3
    err = capsys.readouterr().err
    assert "is not trusted" in err and err.count("\n") == 1
    assert not root.exists()
    assert collector.op("agents") == []


def test_enrolling_again_needs_force_and_keeps_the_old_outbox(
    collector: CollectorHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "state"
    assert main(enroll(collector, root, collector.new_token())) == 0
    first = load_identity(StateDir(root)).agent_id
    assert main(["test-alert", "--state", str(root)]) == 0
    capsys.readouterr()
    assert main(enroll(collector, root, collector.new_token())) == 1
    assert "--force" in capsys.readouterr().err
    assert load_identity(StateDir(root)).agent_id == first
    StateDir(root).policy.write_bytes(b"a bundle signed by the old collector's key")
    assert main(enroll(collector, root, collector.new_token(), "--force")) == 0
    assert not StateDir(root).policy.exists()  # nothing published here: not kept, not refused
    second = load_identity(StateDir(root)).agent_id
    assert second != first
    kept = [p.name for p in root.iterdir() if p.name.startswith("outbox.sqlite.previous-")]
    assert any(name.startswith(f"outbox.sqlite.previous-{first}-") for name in kept)
    assert not StateDir(root).outbox.exists()


def test_enrolling_with_the_collector_down_exits_3_and_leaves_nothing(
    collector: CollectorHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = collector.new_token()
    collector.stop()
    root = tmp_path / "state"
    assert main(enroll(collector, root, token)) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unavailable" in err
    assert not root.exists()


def test_a_token_can_come_from_standard_input(
    collector: CollectorHarness,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(collector.new_token() + "\n"))
    root = tmp_path / "state"
    argv = [
        "enroll", "--state", str(root), "--collector", collector.address,
        "--token-file", "-", "--ca", str(collector.ca_path),
    ]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # no warning: the token was not on the command line
    assert load_identity(StateDir(root)).agent_id


def test_enrolment_keeps_the_schools_current_policy_for_the_first_start(
    tmp_path: Path,
) -> None:
    """The service's first start then monitors by the school's policy from the first key
    (not the shipped lists, replaced a minute later); with nothing published, nothing is
    kept and the service starts with the shipped lists as before."""
    collector = CollectorHarness(tmp_path / "collector")
    collector.start()
    try:
        early = StateDir(tmp_path / "early")
        assert main(enroll(collector, early.root, collector.new_token())) == 0
        assert not early.policy.exists()
        version = published.publish(collector.data).version
        state = StateDir(tmp_path / "state")
        assert main(enroll(collector, state.root, collector.new_token())) == 0
        key = bytes.fromhex(load_identity(state).policy_public_key)
        kept = load_last_good(state.policy, Ed25519PublicKey.from_public_bytes(key))
        assert kept is not None and kept.version == version
        assert state.policy.stat().st_mode & 0o777 == 0o600
    finally:
        collector.stop()
