"""Installs into throwaway roots, with each role's venv built once per session.

The venvs are built by the installer's own `pyenv.create` (venv + pip install of this tree with
the role's extra), then handed to installs with --python-env so each test does not spend half a
minute in pip. tests/e2e/installer builds them through `safeguard-install` itself.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from installer import cli, pyenv

REPO = Path(__file__).resolve().parents[3]
Install = Callable[..., int]


@pytest.fixture(scope="session")
def envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    kept = os.environ.get("INSTALLER_TEST_ENVS")  # local iteration only: reuse built venvs
    if kept:
        return {role: Path(kept) / role for role in ("agent", "collector")}
    base = tmp_path_factory.mktemp("envs")
    made = {}
    for role in ("agent", "collector"):
        pyenv.create(base / role, REPO, role)
        made[role] = base / role
    return made


def listing(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root with its type, mode, owner and content hash (venvs by link)."""
    out: dict[str, tuple[object, ...]] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if "/venv-" in f"/{rel}" and rel.count("/") > 3:
            continue  # inside a venv: pip's own files; the link to it is what we compare
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", str(path.readlink()))
        elif stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = ("file", oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, digest)
        else:
            out[rel] = ("dir", oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid)
    return out


@pytest.fixture
def install(capsys: pytest.CaptureFixture[str]) -> Install:
    """Run `safeguard-install --root ROOT ARGS...` in this process; returns the exit code."""

    def run(root: Path, *args: str | Path) -> int:
        return cli.main(["--root", str(root), *map(str, args)])

    return run
