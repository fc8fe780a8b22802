"""Where the suite's time goes: each test's time, the slowest files at the end, and on a
timeout (scripts/test's backstop sends SIGTERM) which tests were still running.

CI gives one run's output and nothing else, so a run that is cut off must say what it was
doing. Runs in the controller only (under xdist the workers' reports arrive there). With
``TEST_TIMINGS_JSON=path`` every test's seconds are also written there, to find what to cut.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import FrameType

import pytest

SLOWEST = 25


class Timings:
    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.spent: dict[str, float] = defaultdict(float)
        self.outcome: dict[str, str] = {}
        self.begun = time.monotonic()

    def start(self, nodeid: str) -> None:
        self.started[nodeid] = time.monotonic()

    def report(self, report: pytest.TestReport) -> None:
        self.spent[report.nodeid] += report.duration
        if report.failed or report.when == "call" or report.skipped:
            self.outcome.setdefault(report.nodeid, report.outcome)
            if report.failed:
                self.outcome[report.nodeid] = "failed"
        if report.when == "teardown":
            self.started.pop(report.nodeid, None)

    def summary(self) -> list[str]:
        lines = [f"wall {time.monotonic() - self.begun:.0f} s; slowest files (sum of their tests):"]
        by_file: dict[str, float] = defaultdict(float)
        for nodeid, seconds in self.spent.items():
            by_file[nodeid.split("::")[0]] += seconds
        for path, seconds in sorted(by_file.items(), key=lambda kv: -kv[1])[:SLOWEST]:
            lines.append(f"  {seconds:7.1f} s  {path}")
        lines.append("slowest tests:")
        for nodeid, seconds in sorted(self.spent.items(), key=lambda kv: -kv[1])[:SLOWEST]:
            lines.append(f"  {seconds:7.1f} s  {self.outcome.get(nodeid, '?'):7}  {nodeid}")
        failed = [nodeid for nodeid, outcome in self.outcome.items() if outcome == "failed"]
        if failed:
            lines.append("failed:")
            lines.extend(f"  {nodeid}" for nodeid in failed)
        now = time.monotonic()
        if self.started:
            lines.append("still running:")
            for nodeid, since in sorted(self.started.items(), key=lambda kv: kv[1]):
                lines.append(f"  for {now - since:7.1f} s  {nodeid}")
        return lines


_timings = Timings()


def _on_term(signum: int, frame: FrameType | None) -> None:
    err = sys.__stderr__ or sys.stderr
    print("\n== cut off: where the time went", file=err)
    for line in _timings.summary():
        print(line, file=err)
    err.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    signal.signal(signal.SIGTERM, _on_term)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _timings.start(nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _timings.report(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if hasattr(terminalreporter.config, "workerinput"):
        return
    path = os.environ.get("TEST_TIMINGS_JSON")
    if path:
        Path(path).write_text(json.dumps(dict(_timings.spent), indent=0, sort_keys=True))
    terminalreporter.section("where the time went")
    for line in _timings.summary():
        terminalreporter.write_line(line)
