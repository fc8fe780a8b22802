"""The weekly report's and governors' summary's figures (issue 17 item 7): school days only,
whole-number chart axes, and the change against the period before; on a real DuckDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from collector.console import config
from collector.paths import DataDir
from collector.reporting import reports
from collector.reporting.school_days import Terms
from collector.storage.store import Store

pytestmark = pytest.mark.unit
MONDAY = dt.date(2026, 10, 19)  # half-term starts on Friday 23rd's evening
AUTUMN = Terms.parse(["2026-09-03:2026-10-21", "2026-11-02:2026-12-18"])  # Thu 22nd: INSET


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db.duckdb")
    try:
        yield s
    finally:
        s.close()


def _candidate(s: Store, day: dt.date, category: str = "grooming", n: int = 1) -> None:
    at = reports._ms(day) + 10 * 3_600_000  # ten in the morning
    for _ in range(n):
        s.con.execute(
            "INSERT INTO incidents (kind, category, categories, severity, base_severity, "
            "agent_id, account, first_ms, last_ms, created_ms, updated_ms, summary) "
            "VALUES ('detection', ?, ?, 3, 3, 'ag-1', 'pupil.amy', ?, ?, ?, ?, 'x')",
            [category, category, at, at, at, at],
        )


@pytest.mark.parametrize("horizontal", [False, True])
def test_chart_axes_count_in_whole_numbers(horizontal: bool) -> None:
    fig = reports.bar_chart(["Mon 19", "Tue 20"], [1, 2], "New candidates", horizontal)
    try:
        [ax] = fig.axes
        axis = ax.xaxis if horizontal else ax.yaxis
        ticks = axis.get_majorticklocs()
    finally:
        plt.close(fig)
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_weekly_days_are_school_days_only(store: Store) -> None:
    for day in range(7):
        _candidate(store, MONDAY + dt.timedelta(days=day))
    plain = reports.weekly(store.con, MONDAY)
    assert [d.strftime("%a") for d, _ in plain["days"]] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    termly = reports.weekly(store.con, MONDAY, terms=AUTUMN)
    assert [(d.day, n) for d, n in termly["days"]] == [(19, 1), (20, 1), (21, 1)]
    assert termly["total"] == 7  # a weekend's concern still counts; it is not a day on the chart


def test_weekly_compares_each_category_with_last_week(store: Store) -> None:
    _candidate(store, MONDAY, "grooming", 3)
    _candidate(store, MONDAY - dt.timedelta(days=7), "grooming", 1)
    _candidate(store, MONDAY - dt.timedelta(days=6), "self_harm", 2)
    r = reports.weekly(store.con, MONDAY)
    assert r["total"] == 3 and r["previous_total"] == 3
    trend = {t["key"]: (t["now"], t["before"], t["change"]) for t in r["trend"]}
    assert trend == {"grooming": (3, 1, "+2"), "self_harm": (0, 2, "-2")}


def test_governors_trend_hides_small_counts_and_their_change(store: Store) -> None:
    today = dt.date(2026, 12, 9)
    this_period = today - dt.timedelta(weeks=2)
    last_period = today - dt.timedelta(weeks=14)
    _candidate(store, this_period, "grooming", 5)
    _candidate(store, last_period, "grooming", 4)
    _candidate(store, this_period, "bullying", 4)
    _candidate(store, last_period, "bullying", 2)  # 2: hidden, so +2 would give it away
    r = reports.governors(store.con, 12, today)
    trend = {t["key"]: (t["now"], t["before"], t["change"]) for t in r["trend"]}
    assert trend == {"grooming": ("5", "4", "+1"), "bullying": ("4", "fewer than 3", "")}


def test_governors_weeks_leave_out_holidays(store: Store) -> None:
    today = dt.date(2026, 11, 11)
    terms = Terms.parse(["2026-09-03:2026-10-23", "2026-11-02:2026-12-18"])
    _candidate(store, dt.date(2026, 10, 27), n=3)  # half-term: a week with no school day
    weeks = [label for label, _ in reports.governors(store.con, 12, today, terms=terms)["per_week"]]
    assert "26 Oct" not in weeks and "19 Oct" in weeks and "02 Nov" in weeks
    everything = reports.governors(store.con, 12, today)["per_week"]
    assert ("26 Oct", 3) in everything  # with no term dates, every week is a school week


def test_term_dates_come_from_console_toml(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    (tmp_path / "console.toml").write_text('[school]\nterm_dates = ["2026-09-03:2026-10-23"]\n')
    terms = config.load(data).terms
    assert terms.is_school_day(dt.date(2026, 10, 23))
    assert not terms.is_school_day(dt.date(2026, 10, 26))  # half-term
    assert not terms.is_school_day(dt.date(2026, 10, 17))  # a Saturday in term
    assert config.load(DataDir(tmp_path / "none")).terms.is_school_day(dt.date(2026, 8, 3))


@pytest.mark.parametrize(
    "value",
    ['["2026-09-03"]', '["2026-10-23:2026-09-03"]', '"2026-09-03:2026-10-23"', '["soon:later"]'],
)
def test_odd_term_dates_are_refused_with_a_sentence(tmp_path: Path, value: str) -> None:
    (tmp_path / "console.toml").write_text(f"[school]\nterm_dates = {value}\n")
    with pytest.raises(ValueError, match=r"\[school\] .*term"):
        config.load(DataDir(tmp_path))


def test_governors_compare_this_term_with_as_long_of_the_last(store: Store) -> None:
    today = dt.date(2026, 11, 11)  # the tenth day of the second half-term
    terms = Terms.parse(["2026-09-03:2026-10-23", "2026-11-02:2026-12-18"])
    _candidate(store, dt.date(2026, 11, 3), "grooming", 4)
    _candidate(store, dt.date(2026, 9, 4), "grooming", 3)
    _candidate(store, dt.date(2026, 9, 21), "grooming", 5)  # past the same ten days last term
    term = reports.governors(store.con, 12, today, terms=terms)["term"]
    assert (term["this"], term["last"], term["days"]) == (
        dt.date(2026, 11, 2), dt.date(2026, 9, 3), 10)  # fmt: skip
    assert [(t["key"], t["now"], t["before"], t["change"]) for t in term["trend"]] == [
        ("grooming", "4", "3", "+1")
    ]
    assert reports.governors(store.con, 12, today)["term"] is None  # no term dates: no terms


def test_serve_refuses_odd_term_dates_in_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from collector import cli
    from tests.harness import init_data

    data = init_data(tmp_path / "collector")
    (data.root / "console.toml").write_text('[school]\nterm_dates = ["2026-09-03"]\n')
    assert cli.main(["serve", "--data", str(data.root), "--listen", "127.0.0.1:0"]) == 1
    err = capsys.readouterr().err
    assert "term dates '2026-09-03'" in err and "mend console.toml" in err
    assert "Traceback" not in err
