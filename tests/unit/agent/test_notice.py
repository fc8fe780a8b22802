"""The notice's pure parts: the text offered, what a helper's report is taken to mean (never
an exception: any local account can write to the socket), the latest showing, line wrapping."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.notice import DEFAULT_NOTICE, MAX_TEXT, NoticeLog, Showing, notice_text, received
from agent.notice_window import latin1, wrap

pytestmark = pytest.mark.unit

NOW = 1_790_000_000_000


def test_the_policys_text_is_offered_and_a_policy_without_one_gets_the_default() -> None:
    assert notice_text("  This PC\n is   monitored. ") == "This PC is monitored."
    assert notice_text("") == DEFAULT_NOTICE and notice_text(" \n") == DEFAULT_NOTICE
    assert len(notice_text("x" * (MAX_TEXT + 50))) == MAX_TEXT


@pytest.fixture
def young_pid() -> object:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        yield child.pid
    finally:
        child.communicate()


def test_a_reported_showing_is_dated_by_the_service_and_cannot_predate_the_helper(
    young_pid: int,
) -> None:
    fresh = received(["n", "shown", "7", 0], "pupil1", young_pid, NOW)
    assert fresh == Showing(NOW, "7", "pupil1")
    claimed = received(["n", "shown", "7", 86_400_000], "pupil1", young_pid, NOW)
    assert claimed is not None and NOW - claimed.shown_unix_ms < 60_000  # capped at its age
    gone = received(["n", "shown", "7", 5_000], "pupil1", 2**22 + 12_345, NOW)  # no such pid
    assert gone == Showing(NOW, "7", "pupil1")


@pytest.mark.parametrize("message", [
    ["n"], ["n", "shown"], ["n", "shown", "v", True], ["n", "shown", "v", "9"],
    ["n", "shown", "v", -5], ["n", "shown", "v", 10**5000], ["n", "shown", ["x"], {}],
    ["n", 3, "v", 1], ["n", "ok"], ["n", "closed", "v", "x"], ["n", "failed"],
    ["n", "failed", "no display"], ["n", "something else", 1, 2, 3],
])  # fmt: skip
def test_odd_reports_never_raise(message: list[object], young_pid: int) -> None:
    got = received(message, "pupil1", young_pid, NOW)
    assert got is None or (NOW - 60_000 < got.shown_unix_ms <= NOW and len(got.version) <= 40)


def test_dismissals_and_failures_record_no_showing(young_pid: int) -> None:
    for what in (["n", "ok", "3", 10], ["n", "closed", "3", 10], ["n", "failed", "why"]):
        assert received(list(what), "pupil1", young_pid, NOW) is None


def test_the_log_keeps_the_latest_showing_on_the_pc() -> None:
    log = NoticeLog()
    assert log.latest() is None
    log.record(Showing(NOW, "3", "pupil1"))
    log.record(Showing(NOW - 60_000, "2", "pupil2"))  # reported late: an earlier login
    assert log.latest() == Showing(NOW, "3", "pupil1")
    log.record(Showing(NOW + 1, "4", "pupil2"))
    assert log.latest() == Showing(NOW + 1, "4", "pupil2")


def test_lines_keep_every_word_in_order_and_fit() -> None:
    text = "This computer is monitored to keep pupils safe " + "x" * 30 + " ask"

    def measure(s: str) -> int:
        return 7 * len(s)

    lines = wrap(text, 140, measure)
    assert all(measure(line) <= 140 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert lines[0] == "This computer is" and lines[-1] == "xxxxxxxxxx ask"
    assert wrap("", 100, measure) == []


def test_text_is_drawn_in_latin1_with_typographic_marks_made_plain() -> None:
    assert latin1("the school\u2019s policy \u2014 ask \u201cMiss\u201d\u2026") == (
        "the school's policy - ask \"Miss\"..."
    )
    assert latin1("caf\u00e9 \u4e2d") == "caf\u00e9 ?"
