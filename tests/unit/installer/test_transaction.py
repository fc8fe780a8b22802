"""Undo: a failed install leaves files, folders and links as they were."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from installer import manifest
from installer.layout import Layout, target_path
from installer.transaction import InstallError, Transaction

pytestmark = pytest.mark.unit


def snapshot(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", str(p.readlink()))
        elif p.is_file():
            out[rel] = ("file", p.stat().st_mode, p.read_bytes())
        else:
            out[rel] = ("dir", p.stat().st_mode)
    return out


def test_every_kind_of_step_is_undone_on_failure(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/old.conf").write_bytes(b"old")
    (tmp_path / "etc/old.conf").chmod(0o640)
    (tmp_path / "link").symlink_to("a")
    before = snapshot(tmp_path)
    with pytest.raises(RuntimeError), Transaction() as tx:
        tx.mkdir(tmp_path / "var/lib/x", 0o700)
        tx.write(tmp_path / "var/lib/x/key", b"k", 0o600)
        tx.write(tmp_path / "etc/old.conf", b"new", 0o644)
        tx.write(tmp_path / "new/deep/file", b"n", 0o644)
        tx.symlink(tmp_path / "link", "b")
        tx.symlink(tmp_path / "other", "c")
        raise RuntimeError("a later step failed")
    assert snapshot(tmp_path) == before


def test_writes_are_idempotent_and_modes_are_exact(tmp_path: Path) -> None:
    with Transaction() as tx:
        assert tx.write(tmp_path / "f", b"x", 0o600)
        assert not tx.write(tmp_path / "f", b"x", 0o600)
        assert tx.symlink(tmp_path / "l", "f") and not tx.symlink(tmp_path / "l", "f")
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600


def test_a_committed_transaction_keeps_its_work(tmp_path: Path) -> None:
    with Transaction() as tx:
        tx.mkdir(tmp_path / "a/b", 0o700)
    assert (tmp_path / "a/b").is_dir() and tx.created_dirs == [tmp_path / "a", tmp_path / "a/b"]


@pytest.mark.parametrize("bad", ["relative/path", "/", "/etc", "/var/lib", "/opt/safeguard/x"])
def test_data_folders_must_be_absolute_and_not_system_folders(bad: str) -> None:
    with pytest.raises(ValueError):
        target_path(bad)
    assert target_path("/var/lib/safeguard/../safeguard/c") == PurePosixPath("/var/lib/safeguard/c")


def test_layout_maps_target_paths_under_a_throwaway_root(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.host("/etc/x") == tmp_path / "etc/x"
    assert layout.target(tmp_path / "etc/x") == PurePosixPath("/etc/x")
    assert Layout(Path("/")).host("/etc/x") == Path("/etc/x")


def test_other_settings_are_refused_with_what_differs() -> None:
    m = manifest.Manifest("agent", "0.1", {"collector": "a:1", "state": "/s"}, "root", False, True)
    manifest.refuse_other_settings(m, {"collector": "a:1", "state": "/s"})
    with pytest.raises(InstallError, match="collector: 'a:1' installed, 'b:2' asked"):
        manifest.refuse_other_settings(m, {"collector": "b:2", "state": "/s"})


def test_the_source_is_this_tree_or_a_given_wheel(tmp_path: Path) -> None:
    from installer.pyenv import find_source

    assert (find_source(None) / "installer" / "cli.py").is_file()
    wheel = tmp_path / "safeguard_monitor-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert find_source(str(wheel)) == wheel
    with pytest.raises(InstallError, match=r"neither a \.whl file nor a source tree"):
        find_source(str(tmp_path))


def test_an_installer_run_from_a_wheel_installs_that_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`PYTHONPATH=X.whl python3 -m installer ...`: the wheel is what pip installs."""
    from installer import pyenv

    wheel = tmp_path / "safeguard_monitor-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    monkeypatch.setattr(pyenv, "__file__", str(wheel / "installer" / "pyenv.py"))
    assert pyenv.find_source(None) == wheel
    monkeypatch.setattr(pyenv, "__file__", str(tmp_path / "site-packages/installer/pyenv.py"))
    with pytest.raises(InstallError, match="cannot tell where the project"):
        pyenv.find_source(None)


def test_a_python_other_users_cannot_run_is_found(tmp_path: Path) -> None:
    from installer.pyenv import unreachable_by_others

    base = tmp_path / "private" / "python3"
    base.parent.mkdir()
    base.write_text("")
    base.chmod(0o755)
    (tmp_path / "env/bin").mkdir(parents=True)
    (tmp_path / "env/bin/python").symlink_to(base)
    tmp_path.chmod(0o755)
    base.parent.chmod(0o700)  # like /root holding a pyenv Python
    # pytest's own tmp root may be 0700 too: then that is found first, which is as right
    assert unreachable_by_others(tmp_path / "env") in (base.parent, *tmp_path.parents)
    base.parent.chmod(0o755)
    assert unreachable_by_others(tmp_path / "env") != base.parent
