"""A pytest plugin: whatever the tests leave running is killed, and fails the run.

A process a failed test forgot (a writer in a loop, an agent) would otherwise outlive pytest,
hold CI's output pipe open and keep the job waiting until its time limit.
"""

from __future__ import annotations

import contextlib
import sys

import psutil
import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _is_xdist_controller(session.config):
        return  # its children are the workers, each of which checks its own
    me = psutil.Process()
    leaked = [p for p in me.children(recursive=True) if _alive(p)]
    if not leaked:
        return
    for proc in leaked:
        try:
            names = " ".join(proc.cmdline()[:4])
        except psutil.Error:
            names = "?"
        print(f"\nleft running by the tests, killed: pid={proc.pid} {names}", file=sys.stderr)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(leaked, timeout=10)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _is_xdist_controller(config: pytest.Config) -> bool:
    """True in the process that hands tests to pytest-xdist's workers (not in a worker)."""
    return config.pluginmanager.hasplugin("dsession")
