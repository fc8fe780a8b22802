"""The agent's clock corrected by the skew its collector measured (agent/clock.py), where it
decides something: time-limited exemptions. The PC's clock here is the real one; the skew is
given the way a Welcome gives it (AgentClock.measured)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from agent.clock import AgentClock
from agent.policy import ActivePolicy
from agent.shipping_state import ShippingState, read, status_lines
from rules.load import DEFAULT_DIR, load_files, read_folder
from rules.match import match_text
from rules.schema import Policy

pytestmark = pytest.mark.unit
DAY_MS = 86_400_000
TEXT = "they plan to assassinate the archduke"


def policy_with_exemption(start: date, end: date) -> Policy:
    files = {k: v for k, v in read_folder(DEFAULT_DIR).items()
             if not k.startswith(("keywords/", "classes", "guards", "semantic",
                                  "screenshots"))}  # fmt: skip
    files.update({
        "classes.toml": "", "guards.toml": "", "urls.toml": "",
        "exemptions.toml": f'[[exemption]]\nid = "history"\ngroup = "ks2"\n'
                           f'terms = ["assassinate"]\nstart = {start}\nend = {end}\n'
                           'reason = "Year 6 history."\napprover = "A. Example (DSL)"\n',
        "incidents.toml": "[incidents]\ngroup_window_minutes = 30\nsilent_agent_minutes = 60\n",
        "keywords/violence.toml": '[category]\nname = "violence"\nthreshold = 6\nwindow = 12\n\n'
                                  '[[term]]\npattern = "assassinate~"\nweight = 6\n'
                                  'why = "test"\nexample = "assassinated"\n',
        "profiles.toml": '[[profile]]\nname = "ks2"\nsensors = ["keyboard"]\n'
                         'categories = ["violence"]\nurl_categories = []\n',
    })  # fmt: skip
    return load_files(files)


def suppressed(policy: Policy, clock: AgentClock) -> bool:
    alerts = match_text(ActivePolicy(1, policy, clock=clock.now).compiled("ks2"), TEXT)
    assert len(alerts) == 1
    return alerts[0].suppressed


def test_an_exemption_is_judged_by_the_collectors_time_on_a_pc_days_behind() -> None:
    today = datetime.now(UTC).date()
    # By the collector's clock (4 days ahead of this PC's) the exemption runs; by the PC's,
    # it has not begun.
    policy = policy_with_exemption(today + timedelta(days=2), today + timedelta(days=6))
    clock = AgentClock()
    assert not suppressed(policy, clock)  # nothing measured: the PC's own clock
    clock.measured(-4 * DAY_MS, 5 * 60_000)
    assert suppressed(policy, clock)


def test_an_exemption_is_not_ended_early_on_a_pc_days_ahead() -> None:
    today = datetime.now(UTC).date()
    # By the collector's clock (3 days behind this PC's) the exemption runs; by the PC's, over.
    policy = policy_with_exemption(today - timedelta(days=5), today - timedelta(days=1))
    clock = AgentClock()
    assert not suppressed(policy, clock)
    clock.measured(3 * DAY_MS, 5 * 60_000)
    assert suppressed(policy, clock)


def test_a_skew_within_the_limit_is_not_corrected() -> None:
    clock = AgentClock()
    clock.measured(60_000, 5 * 60_000)
    assert clock.correction_ms() == 0 and not clock.skewed
    clock.measured(2 * 3600_000, 5 * 60_000)
    assert clock.correction_ms() == 2 * 3600_000 and clock.skewed


def test_status_shows_the_last_error_until_a_session_resolves_it(tmp_path: Path) -> None:
    path = tmp_path / "shipping.json"
    assert status_lines(read(path))[1] == "last_error:   none recorded"
    state = ShippingState(path)
    state.error("TLS: the collector's certificate has expired by this PC's clock", 1_000)
    lines = status_lines(read(path))
    assert "has expired" in lines[1] and "not resolved" in lines[1]
    ShippingState(path).session(2_000, 7_200_000, 300_000)  # a new process reads it back
    lines = status_lines(read(path))
    assert "has expired" in lines[1] and "resolved: a session opened at 1970" in lines[1]
    assert lines[2].startswith("clock_skew:   +7200 s (2 h 0 min ahead")
    assert "set the PC's clock" in lines[2]
    assert ShippingState(path).clock() == (7_200_000, 300_000)


def test_a_damaged_state_file_reads_as_nothing_recorded(tmp_path: Path) -> None:
    path = tmp_path / "shipping.json"
    path.write_text("{not json")
    assert ShippingState(path).clock() is None
    assert "none recorded" in status_lines(read(path))[0]
