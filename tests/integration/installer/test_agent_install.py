"""`safeguard-install agent` into throwaway roots, enrolling with a real collector (TLS gRPC on
127.0.0.1): private state, units, the login helper; a room token for N PCs; bad input of every
kind leaves the root as it was; upgrade keeps identity, outbox and chain; uninstall."""

from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path

import pytest

from tests.harness import CollectorHarness
from tests.integration.installer.conftest import Install, listing

pytestmark = pytest.mark.integration

STATE = "var/lib/safeguard/agent"


def install_agent(
    install: Install,
    root: Path,
    envs: dict[str, Path],
    collector: CollectorHarness,
    token: str | None,
    *extra: str | Path,
) -> int:
    args: list[str | Path] = [
        "agent",
        "--collector",
        collector.address,
        "--ca",
        collector.ca_path,
        "--no-start",
        "--python-env",
        envs["agent"],
    ]
    if token is not None:
        token_file = root.parent / f"{root.name}.token"
        token_file.write_text(token + "\n")
        args += ["--token-file", token_file]
    return install(root, *args, *extra)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_agent_install_enrols_with_private_state_service_and_login_helper(
    tmp_path: Path,
    envs: dict[str, Path],
    install: Install,
    collector: CollectorHarness,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "pc1"
    assert install_agent(install, root, envs, collector, collector.new_token()) == 0
    state = root / STATE
    assert mode(state) == 0o700 and state.stat().st_uid == 0
    for name in ("agent.key", "identity.json", "ca.pem"):
        assert mode(state / name) == 0o600, name
    assert (state / "ca.pem").read_bytes() == collector.ca_path.read_bytes()
    unit = (root / "etc/systemd/system/safeguard-agent.service").read_text()
    assert (
        f"ExecStart=/opt/safeguard/agent/current/bin/safeguard-agent run --state /{STATE}" in unit
    )
    assert (
        root / "etc/systemd/system/multi-user.target.wants/safeguard-agent.service"
    ).is_symlink()
    desktop = (root / "etc/xdg/autostart/safeguard-keyboard-helper.desktop").read_text()
    assert f"keyboard-helper --state /{STATE}" in desktop
    assert not (root / "etc/passwd").exists()  # the agent service runs as root: no account
    agent_id = capsys.readouterr().out.split("agent id")[1].split()[0]
    assert [a["agent_id"] for a in collector.op("agents")] == [agent_id]

    # the technician's check, through the link on root's PATH, with the agent running as its
    # unit would: the test alert is queued, shipped and acknowledged
    link = root / "usr/local/sbin/safeguard-install"
    assert link.readlink() == Path("../../../opt/safeguard/agent/current/bin/safeguard-install")
    exe = root / "opt/safeguard/agent/current/bin/safeguard-agent"
    service = subprocess.Popen(
        [exe, "run", "--state", state, "--keyboard-socket", tmp_path / "kb.sock"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        checked = subprocess.run(
            [link, "--root", root, "test-alert", "--note", "from the technician"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        service.terminate()
        _, service_log = service.communicate(timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr + service_log
    assert "ok: the collector at 127.0.0.1:" in checked.stdout
    event_id = checked.stdout.split("test alert ")[1].split()[0]
    alerts = [e["event"] for e in collector.events(agent_id) if "test_alert" in e["event"]]
    assert [(a["event_id"], a["test_alert"]["note"]) for a in alerts] == [
        (event_id, "from the technician")
    ]


def test_a_room_token_enrols_n_pcs_and_the_next_one_is_refused_cleanly(
    tmp_path: Path,
    envs: dict[str, Path],
    install: Install,
    collector: CollectorHarness,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = collector.new_token(uses=2)
    for pc in ("pc1", "pc2"):
        assert install_agent(install, tmp_path / pc, envs, collector, token) == 0
    assert len(collector.op("agents")) == 2
    assert install_agent(install, tmp_path / "pc3", envs, collector, token) == 1
    err = capsys.readouterr().err
    assert "enrolment failed" in err and "nothing changed" in err and "agent-line" in err
    assert listing(tmp_path / "pc3") == {}


def test_installing_twice_changes_nothing_and_spends_no_token(
    tmp_path: Path,
    envs: dict[str, Path],
    install: Install,
    collector: CollectorHarness,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "pc"
    token = collector.new_token(uses=1)
    assert install_agent(install, root, envs, collector, token) == 0
    before = listing(root)
    assert install_agent(install, root, envs, collector, token) == 0  # the token is spent
    assert "nothing changed (the token was not used)" in capsys.readouterr().out
    assert listing(root) == before
    other = collector.address.replace("127.0.0.1", "localhost")
    code = install(
        root,
        "agent",
        "--collector",
        other,
        "--ca",
        collector.ca_path,
        "--token",
        token,
        "--no-start",
        "--python-env",
        envs["agent"],
    )
    assert code == 1 and "other settings" in capsys.readouterr().err
    assert listing(root) == before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "case",
    [
        "wrong token",
        "unreachable",
        "not a CA",
        "no CA file",
        "no token",
        "empty token",
        "bad address",
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(
    tmp_path: Path,
    envs: dict[str, Path],
    install: Install,
    collector: CollectorHarness,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    root = tmp_path / "pc"
    root.mkdir()
    (tmp_path / "junk.pem").write_text("hello\n")
    (tmp_path / "empty").write_text("\n")
    good = ["--ca", str(collector.ca_path), "--no-start", "--python-env", str(envs["agent"])]
    token = ["--token-file", str(tmp_path / "t")]
    (tmp_path / "t").write_text(collector.new_token() + "\n")
    args, code, message = {
        "wrong token": (
            ["--collector", collector.address, *good, "--token", "sgt_00_nope"],
            1,
            "enrolment failed",
        ),
        "unreachable": (
            ["--collector", f"127.0.0.1:{free_port()}", *good, *token],
            3,
            "cannot reach the collector",
        ),
        "not a CA": (
            [
                "--collector",
                collector.address,
                *token,
                *good[2:],
                "--ca",
                str(tmp_path / "junk.pem"),
            ],
            1,
            "is not a PEM certificate",
        ),
        "no CA file": (
            [
                "--collector",
                collector.address,
                *token,
                *good[2:],
                "--ca",
                str(tmp_path / "none.pem"),
            ],
            1,
            "cannot read the CA file",
        ),
        "no token": (["--collector", collector.address, *good], 1, "token is needed"),
        "empty token": (
            ["--collector", collector.address, *good, "--token-file", str(tmp_path / "empty")],
            1,
            "token is empty",
        ),
        "bad address": (
            ["--collector", "collector-without-port", *good, *token],
            2,
            "is not HOST:PORT",
        ),
    }[case]
    assert install(root, "agent", *args) == code
    assert message in capsys.readouterr().err
    assert listing(root) == {}
    assert collector.op("agents") == []


def agent(envs: dict[str, Path], *args: str | Path) -> str:
    exe = envs["agent"] / "bin" / "safeguard-agent"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, check=True).stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upgrade_keeps_identity_outbox_and_chain_and_uninstall_keeps_or_purges(
    tmp_path: Path,
    envs: dict[str, Path],
    install: Install,
    collector: CollectorHarness,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "pc"
    root.mkdir()
    assert install_agent(install, root, envs, collector, collector.new_token()) == 0
    state = root / STATE
    capsys.readouterr()
    for note in ("one", "two"):  # not running (--no-start): queued, and said so with the fix
        assert install(root, "test-alert", "--note", note, "--timeout", "1") == 1
        err = capsys.readouterr().err
        assert "the agent service is not running, so nothing ships" in err, err
        assert "waits in the agent's outbox" in err and "start it by hand with `sudo " in err
    assert "pending:      2 " in agent(envs, "status", "--state", state)
    kept = {n: digest(state / n) for n in ("agent.key", "identity.json", "outbox.sqlite")}
    status = agent(envs, "status", "--state", state)
    tree = listing(root)
    assert install(root, "upgrade", "--python-env", envs["agent"], "--no-start") == 0
    assert "kept as it was" in capsys.readouterr().out
    assert {n: digest(state / n) for n in kept} == kept
    assert agent(envs, "status", "--state", state) == status
    assert listing(root) == tree  # the same code and settings: the same files
    agent_id = status.split("agent_id:")[1].split()[0]
    assert install(root, "uninstall", "agent", "--yes") == 0  # --keep-data is the default
    assert {n: digest(state / n) for n in kept} == kept
    assert not (root / "etc/systemd/system/safeguard-agent.service").exists()
    assert not (root / "etc/xdg/autostart/safeguard-keyboard-helper.desktop").exists()
    # installing again picks up the kept identity: no token needed, the chain goes on
    assert install_agent(install, root, envs, collector, None) == 0
    assert f"{agent_id} (kept from an earlier install)" in capsys.readouterr().out
    assert agent(envs, "status", "--state", state) == status
    assert install(root, "uninstall", "--yes", "--purge") == 0
    # what the reinstall found already there (system folders on a real PC) is all that stays
    assert set(listing(root)) == {"var", "var/lib"}


def test_doctor_names_each_failure_with_a_fix(
    tmp_path: Path,
    envs: dict[str, Path],
    install: Install,
    collector: CollectorHarness,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "pc"
    assert install_agent(install, root, envs, collector, collector.new_token()) == 0
    capsys.readouterr()
    assert install(root, "doctor") == 1  # the agent is not running (--no-start)
    out = capsys.readouterr().out
    assert "[  ok   ] TLS: TLS to 127.0.0.1" in out and "[  ok   ] gRPC:" in out
    assert "[ FAIL  ] running:" in out and "fix: installing under --root" in out
    (root / STATE / "agent.key").chmod(0o644)
    collector.stop()
    assert install(root, "doctor") == 1
    out = capsys.readouterr().out
    assert "agent.key is 0644, more open than 0600" in out and "fix: chmod 0600" in out
    assert "[ FAIL  ] TLS: cannot connect to 127.0.0.1" in out
    assert "fix: start the collector, check the address" in out
    assert install(tmp_path / "nothing", "status") == 1
    assert "nothing from safeguard-install is installed here" in capsys.readouterr().err


def test_both_roles_on_one_machine_share_the_command_until_the_last_goes(
    tmp_path: Path,
    envs: dict[str, Path],
    install: Install,
    collector: CollectorHarness,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "both"
    link = root / "usr/local/sbin/safeguard-install"
    collector_args = ["--listen", "127.0.0.1:50098", "--web", "127.0.0.1:8098", "--no-start"]
    code = install(
        root, "collector", "--data", "/srv/collector", *collector_args,
        "--python-env", envs["collector"],
    )  # fmt: skip
    assert code == 0
    assert install_agent(install, root, envs, collector, collector.new_token()) == 0
    to_collector = Path("../../../opt/safeguard/collector/current/bin/safeguard-install")
    assert link.readlink() == to_collector  # made by the first, shared by the second
    assert install(root, "uninstall", "collector", "--yes", "--purge") == 0
    assert link.readlink() == Path("../../../opt/safeguard/agent/current/bin/safeguard-install")
    version = subprocess.run([link, "--root", root, "status"], capture_output=True, text=True)
    assert "agent " in version.stdout, version.stdout + version.stderr  # it runs, from the agent
    assert install(root, "uninstall", "agent", "--yes", "--purge") == 0
    assert not link.is_symlink() and not (root / "usr").exists()
    # a file there that is not ours is left alone, and the install says so
    link.parent.mkdir(parents=True)
    link.write_text("#!/bin/sh\n")
    capsys.readouterr()
    assert install_agent(install, root, envs, collector, collector.new_token()) == 0
    assert "/usr/local/sbin/safeguard-install is not ours and was left as it is" in (
        capsys.readouterr().out
    )
    assert link.read_text() == "#!/bin/sh\n"
    assert install(root, "uninstall", "--yes", "--purge") == 0
    assert link.read_text() == "#!/bin/sh\n"
