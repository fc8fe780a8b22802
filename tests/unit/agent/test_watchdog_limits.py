"""The watchdog's counting (a spike is never acted on) and its settings on the command line."""

from __future__ import annotations

import pytest

from agent.cli import _parser, main
from agent.selfwatch import Strikes, WatchdogLimits

pytestmark = pytest.mark.unit


def test_only_checks_over_the_limit_in_a_row_count() -> None:
    s = Strikes(3)
    assert [s.record("a", over) for over in (True, True, False, True, True)] == [False] * 5
    assert s.record("a", True)  # the third in a row
    assert not s.record("a", True)  # and it starts again after acting


def test_keys_no_longer_measured_are_forgotten() -> None:
    s = Strikes(2)
    s.record("gone", True)
    s.keep_only({"other"})
    assert not s.record("gone", True)


def test_defaults_fit_an_old_classroom_pc() -> None:
    limits = WatchdogLimits()
    assert limits.sustained_s == 60 and limits.sensor_cpu_percent == 20
    assert (limits.helper_rss_mb, limits.service_rss_mb) == (150, 250)


def test_the_limits_are_flags_of_run() -> None:
    args = _parser().parse_args(["run", "--state", "/s", "--watchdog-check", "5",
                                 "--watchdog-sustained", "4", "--sensor-cpu-limit", "35",
                                 "--helper-memory-limit", "200", "--no-watchdog"])  # fmt: skip
    assert (args.watchdog_check, args.watchdog_sustained, args.sensor_cpu_limit) == (5, 4, 35)
    assert args.helper_memory_limit == 200 and args.no_watchdog


def test_a_bad_limit_is_one_plain_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--state", "/s", "--sensor-cpu-limit", "lots"]) == 2
    err = capsys.readouterr().err
    assert "--sensor-cpu-limit: 'lots' is not a number" in err and "Traceback" not in err
