"""The code each role runs: its own virtual environment with only that role's dependencies.

Layout: /opt/safeguard/ROLE/venv-N (one per install or upgrade) and `current`, a symlink to the
one in use; units run `current/bin/...`. An upgrade builds venv-N+1 beside the running one,
checks it, then swaps the link in one rename, so a failed upgrade leaves the old code running.
A venv's scripts name their interpreter by absolute path, so venvs are never moved or renamed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from installer.layout import Layout
from installer.transaction import InstallError, Transaction

log = logging.getLogger(__name__)

_VENV = re.compile(r"^venv-(\d+)$")
PIP_TIMEOUT_S = 1800

# Run inside the new environment: the role's code imports, and the agent's has no DuckDB.
_CHECK = """
import importlib, importlib.metadata, sys
role = sys.argv[1]
importlib.import_module(role + ".cli")
if role == "agent":
    for name in ("duckdb", "pyarrow", "aiohttp"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        sys.exit("the agent environment can import " + name + ", which only the collector needs")
print(importlib.metadata.version("safeguard-monitor"))
"""


def find_source(given: str | None) -> Path:
    """What pip installs: a source tree or a built wheel; by default the tree (or the wheel)
    this installer runs from."""
    if given:
        path = Path(given).absolute()
        if path.is_file() and path.suffix == ".whl":
            return path
        if (path / "pyproject.toml").is_file():
            return path
        raise InstallError(f"--source {given} is neither a .whl file nor a source tree")
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    if here.is_file() and here.suffix == ".whl":  # run from the wheel: PYTHONPATH=X.whl
        return here
    raise InstallError(
        "cannot tell where the project's code is", fix="give --source WHEEL_OR_SOURCE_TREE"
    )


def check(env: Path, role: str) -> str:
    """Check an environment can run `role`; returns the installed project version."""
    python = env / "bin" / "python"
    if not python.exists():
        raise InstallError(f"{env} is not a Python virtual environment (no bin/python)")
    result = subprocess.run(
        [str(python), "-c", _CHECK, role], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise InstallError(f"the {role} environment {env} is not usable: {detail[0]}")
    return result.stdout.strip()


def unreachable_by_others(env: Path) -> Path | None:
    """The first folder or file on the way to the venv's real interpreter that other users
    cannot pass or run (e.g. a pyenv Python under /root), or None. The collector's account and
    the pupils' keyboard helpers run this interpreter, not root."""
    real = (env / "bin" / "python").resolve()
    for path in [*reversed(real.parents), real]:
        if not path.stat().st_mode & stat.S_IXOTH:
            return path
    return None


def require_shared_python(layout: Layout, env: Path) -> None:
    if layout.is_throwaway:
        return  # a test root's interpreter is this machine's, not the target's
    blocked = unreachable_by_others(env)
    if blocked is not None:
        raise InstallError(
            f"{env}'s Python ({(env / 'bin' / 'python').resolve()}) is not usable by other "
            f"users ({blocked} is closed to them), so the service account and the pupils' "
            "keyboard helpers could not run it; nothing changed",
            fix="run the installer with the system Python: sudo /usr/bin/python3 -m installer ...",
        )


# What each role's venv installs: a PC gets the semantic stage's runtime (onnxruntime,
# numpy) with the agent; the policy decides whether it runs.
EXTRAS = {"agent": "agent,semantic"}


def create(env: Path, source: Path, role: str) -> str:
    """A new venv at `env` with `pip install SOURCE[extras]`; returns the version installed."""
    log.info("venv.create path=%s source=%s role=%s", env, source, role)
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(env)], capture_output=True, text=True, timeout=300
    )
    if made.returncode != 0:
        raise InstallError(
            f"could not create a Python environment at {env}: {made.stderr.strip()}",
            fix="apt-get install python3-venv",
        )
    pip = subprocess.run(
        [
            str(env / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-input",
            "--disable-pip-version-check",
            f"{source}[{EXTRAS.get(role, role)}]",
        ],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1"},
    )
    if pip.returncode != 0:
        tail = "\n".join(pip.stderr.strip().splitlines()[-5:])
        raise InstallError(
            f"pip could not install the {role} into {env}:\n{tail}",
            fix="check this PC reaches the package index (or give --source a wheel) and retry",
        )
    return check(env, role)


def ensure(
    layout: Layout, tx: Transaction, role: str, source: Path, python_env: Path | None
) -> tuple[Path, str]:
    """The role's environment (made if missing); returns its path on this disk and version."""
    current = layout.host(layout.current(role))
    if current.is_symlink() and current.exists():
        require_shared_python(layout, current)
        return current, check(current, role)
    return current, switch(layout, tx, role, source, python_env)


def switch(
    layout: Layout, tx: Transaction, role: str, source: Path, python_env: Path | None
) -> str:
    """Build a new environment (or adopt `python_env`) and point `current` at it."""
    current = layout.host(layout.current(role))
    if python_env is not None:
        env = python_env.absolute()
        require_shared_python(layout, env)
        version = check(env, role)
        tx.symlink(current, str(env))
        return version
    home = layout.host(layout.env_dir(role))
    tx.mkdir(home, 0o755)
    numbers = [int(m.group(1)) for p in home.iterdir() if (m := _VENV.match(p.name))]
    name = f"venv-{max(numbers, default=0) + 1}"
    tx.on_undo(f"venv {home / name}", lambda: shutil.rmtree(home / name, ignore_errors=True))
    version = create(home / name, source, role)
    require_shared_python(layout, home / name)
    tx.symlink(current, name)
    return version


def prune(layout: Layout, role: str) -> None:
    """Remove the venvs `current` no longer points at (after a successful upgrade)."""
    home = layout.host(layout.env_dir(role))
    current = layout.host(layout.current(role))
    in_use = str(current.readlink()) if current.is_symlink() else ""
    for path in home.iterdir() if home.is_dir() else []:
        if _VENV.match(path.name) and path.name != in_use:
            log.info("venv.prune path=%s", path)
            shutil.rmtree(path, ignore_errors=True)
