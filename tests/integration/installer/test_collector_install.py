"""`safeguard-install collector` into a throwaway root: account, permissions, unit, manifest;
twice changes nothing; bad input changes nothing; uninstall takes back what it made."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from installer import cli
from tests.integration.installer.conftest import Install, listing

pytestmark = pytest.mark.integration

DATA = "/var/lib/safeguard/collector"


def install_collector(install: Install, root: Path, envs: dict[str, Path], *extra: str) -> int:
    return install(
        root,
        "collector",
        "--data",
        DATA,
        "--listen",
        "127.0.0.1:50099",
        "--web",
        "127.0.0.1:8099",
        "--no-start",
        "--python-env",
        envs["collector"],
        *extra,
    )


def test_collector_install_makes_account_private_data_unit_and_first_dsl(
    tmp_path: Path, envs: dict[str, Path], install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    assert install_collector(install, root, envs) == 0
    out = capsys.readouterr().out
    passwd = (root / "etc/passwd").read_text().splitlines()
    assert len(passwd) == 1 and passwd[0].startswith("safeguard:x:")
    uid = int(passwd[0].split(":")[2])
    assert 100 <= uid <= 999 and passwd[0].endswith(":/nonexistent:/usr/sbin/nologin")
    data = root / DATA.lstrip("/")
    assert data.stat().st_mode & 0o777 == 0o700
    for key in (data / "secrets").iterdir():
        assert key.stat().st_mode & 0o777 == 0o600, key
    if os.geteuid() == 0:
        assert {p.stat().st_uid for p in [data, *data.rglob("*")]} == {uid}
    unit = (root / "etc/systemd/system/safeguard-collector.service").read_text()
    assert "User=safeguard" in unit and f"--data {DATA} --listen 127.0.0.1:50099" in unit
    wants = root / "etc/systemd/system/multi-user.target.wants/safeguard-collector.service"
    assert wants.readlink() == Path("../safeguard-collector.service")
    assert (root / "etc/safeguard/ca.pem").read_bytes() == (data / "ca.pem").read_bytes()
    assert (root / "opt/safeguard/collector/current").readlink() == envs["collector"]
    # printed once: the DSL's password (which logs in), the agent line with a room token
    password = out.split("one-time password: ")[1].split()[0]
    assert len(password) >= 12
    # a fresh PC has no safeguard-install yet: the line runs the installer from the tree
    line = next(x for x in out.splitlines() if x.startswith("echo sgt_"))
    assert line.endswith(
        "| sudo /usr/bin/python3 -m installer agent "
        "--collector 127.0.0.1:50099 --ca ca.pem --token-file -"
    )
    assert "python3-venv" in out and "source tree" in out and "docs/installer.md" in out
    # and this machine has it on root's PATH from now on, through `current`
    link = root / "usr/local/sbin/safeguard-install"
    assert link.readlink() == Path("../../../opt/safeguard/collector/current/bin/safeguard-install")
    assert link.resolve() == (envs["collector"] / "bin/safeguard-install").resolve()
    users = envs["collector"] / "bin" / "safeguard-collector"
    import subprocess

    listed = subprocess.run(
        [users, "user", "list", "--data", data], capture_output=True, text=True, check=True
    ).stdout
    assert listed.split()[:2] == ["dsl", "dsl"]
    manifest = json.loads((root / "etc/safeguard/collector.json").read_text())
    assert manifest["account_created"] and manifest["settings"]["data"] == DATA
    assert manifest["command_link"] == "/usr/local/sbin/safeguard-install"
    assert "/usr/local/sbin" in manifest["created_dirs"]  # only under --root: a PC has it


def test_installing_twice_changes_nothing(
    tmp_path: Path, envs: dict[str, Path], install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    assert install_collector(install, root, envs) == 0
    before = listing(root)
    assert install_collector(install, root, envs) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert listing(root) == before


def test_other_settings_over_an_install_are_refused_and_change_nothing(
    tmp_path: Path, envs: dict[str, Path], install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    assert install_collector(install, root, envs) == 0
    before = listing(root)
    code = install(
        root, "collector", "--data", "/srv/other", "--no-start", "--python-env", envs["collector"]
    )
    assert code == 1
    assert "already installed here with other settings" in capsys.readouterr().err
    assert listing(root) == before


def test_a_non_empty_folder_that_is_no_collector_is_refused(
    tmp_path: Path, envs: dict[str, Path], install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    (root / DATA.lstrip("/")).mkdir(parents=True)
    (root / DATA.lstrip("/") / "holiday.jpg").write_bytes(b"not ours")
    before = listing(root)
    assert install_collector(install, root, envs) == 1
    assert "holds no collector" in capsys.readouterr().err
    assert listing(root) == before


def test_a_failed_step_rolls_back_everything(
    tmp_path: Path, envs: dict[str, Path], install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    # the unit's place is taken by a folder: a late step fails, after init and the first DSL
    (root / "etc/systemd/system/safeguard-collector.service").mkdir(parents=True)
    before = listing(root)
    assert install_collector(install, root, envs) == 1
    assert "Is a directory" in capsys.readouterr().err
    assert listing(root) == before


def tokens(root: Path) -> int:
    import duckdb

    with duckdb.connect(str(root / DATA.lstrip("/") / "collector.duckdb"), read_only=True) as db:
        row = db.execute("SELECT count(*) FROM tokens").fetchone()
    assert row is not None
    return int(row[0])


def test_a_failed_install_over_a_kept_collector_makes_no_room_token(
    tmp_path: Path, envs: dict[str, Path], install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    """The collector cannot take a token back, so the install makes it last: a failure before
    then leaves no token that could enrol a PC with a collector whose install was undone."""
    root = tmp_path / "root"
    assert install_collector(install, root, envs) == 0
    assert install(root, "uninstall", "--yes", "--keep-data") == 0
    assert tokens(root) == 1
    (root / "etc/systemd/system/safeguard-collector.service").mkdir(parents=True)
    before = listing(root)
    assert install_collector(install, root, envs) == 1
    assert "Is a directory" in capsys.readouterr().err
    assert tokens(root) == 1
    after = listing(root)
    data = DATA.lstrip("/") + "/"  # the database's own files move when it is opened
    assert {k: v for k, v in after.items() if not k.startswith(data)} == {
        k: v for k, v in before.items() if not k.startswith(data)
    }
    assert not (root / "usr/local/sbin/safeguard-install").is_symlink()


def test_not_root_is_refused_before_anything_changes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code = cli.main(["collector", "--data", DATA, "--python-env", "/nonexistent"])
    assert code == 1
    assert "must run as root" in capsys.readouterr().err


def test_uninstall_keep_data_then_purge(
    tmp_path: Path, envs: dict[str, Path], install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert install_collector(install, root, envs) == 0
    assert install(root, "uninstall", "--yes", "--purge") == 0
    assert listing(root) == {}  # all of it, account and folders too
    assert install_collector(install, root, envs) == 0
    data = listing(root / DATA.lstrip("/"))
    assert install(root, "uninstall", "--yes", "--keep-data") == 0
    left = listing(root)
    assert not any(
        p.startswith(("opt", "etc/systemd", "etc/safeguard"))
        for p in left
        if p not in ("etc/systemd", "etc/systemd/system")
    )
    assert listing(root / DATA.lstrip("/")) == data  # database, keys: as they were
    assert "safeguard:" in (root / "etc/passwd").read_text()  # the data's owner stays
    # the same install picks the kept collector up as it is
    assert install_collector(install, root, envs) == 0
    assert "already existed; password unchanged" in capsys.readouterr().out
    assert install(root, "uninstall", "--yes", "--purge") == 0
    assert not (root / DATA.lstrip("/")).exists() and not (root / "etc/passwd").exists()


def test_uninstall_asks_and_a_script_without_yes_is_told_how(
    tmp_path: Path, envs: dict[str, Path], install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    assert install_collector(install, root, envs) == 0
    before = listing(root)
    assert install(root, "uninstall") == 1  # pytest's stdin is no terminal
    assert "add --yes" in capsys.readouterr().err
    assert listing(root) == before
    assert install(tmp_path / "empty", "uninstall", "--yes") == 1
    assert "nothing to remove" in capsys.readouterr().err


def test_uninstall_purge_stops_a_collector_started_by_hand_and_never_tracebacks(
    tmp_path: Path, envs: dict[str, Path], install: Install, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess

    from installer import accounts

    root = tmp_path / "root"
    assert install_collector(install, root, envs) == 0
    # Where systemd is not running the installer says to start the collector by hand: a
    # process run from the role's venv (a stand-in that just waits).
    python = root / "opt/safeguard/collector/current/bin/python"
    by_hand = subprocess.Popen([str(python), "-c", "import time; time.sleep(600)"])
    viewer = subprocess.Popen(["tail", "-f", str(python)], stdout=subprocess.DEVNULL)  # a bystander
    try:
        # The account is still in use as userdel sees it: reported, not a traceback.
        def busy(layout: object, name: str) -> None:
            raise subprocess.CalledProcessError(
                8, ["userdel", name], stderr=f"userdel: user {name} is currently used by process 1")

        monkeypatch.setattr(accounts, "remove", busy)
        capsys.readouterr()
        assert install(root, "uninstall", "--yes", "--purge") == 1
        out, err = capsys.readouterr()
        assert by_hand.wait(30) is not None  # stopped, as the service would have been
        assert "started by hand" in out
        assert "could not remove: the account" in err and "currently used" in err
        assert "Traceback" not in out + err
        assert viewer.poll() is None  # a program that only reads a file there is left alone
        left = listing(root)
        assert not any(p.startswith(("opt", "etc/safeguard", "var")) for p in left)  # the rest went
    finally:
        for proc in (by_hand, viewer):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
