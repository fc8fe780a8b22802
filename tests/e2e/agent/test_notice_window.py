"""The notice's windows on a real X server (Xvfb), driven as the helper drives them: shown once
per login, reported again (not shown again) when the service comes back, shown again for a new
text; the indicator follows the connection to the service, and clicking it shows the notice.

Each step polls for the window or report it needs, with long deadlines."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from agent import notice_window
from agent.helper import x11_notice
from agent.notice_window import INDICATOR_TITLE, TITLE, NoticeDisplay, Screen
from tests.e2e.agent.conftest import wait_until
from tests.e2e.agent.desktop import Desktop
from tests.e2e.agent.test_notice import notice_property, visible

pytestmark = pytest.mark.e2e


class Reports:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[list[object]] = []

    def __call__(self, message: list[object]) -> None:
        with self.lock:
            self.items.append(message)

    def of(self, what: str) -> list[list[object]]:
        with self.lock:
            return [m for m in self.items if m[1] == what]


@pytest.fixture
def shown(desktop: Desktop) -> Iterator[tuple[NoticeDisplay, Reports]]:
    reports = Reports()
    notice = NoticeDisplay(desktop.display, reports, x11_notice)
    notice.connected(True)
    try:
        yield notice, reports
    finally:
        notice.stop()


def press_ok(desktop: Desktop) -> None:
    wid = wait_until(lambda: visible(desktop, TITLE), 60, "the notice")[0]
    desktop.xdotool("windowfocus", "--sync", wid)
    desktop.key("Return")
    wait_until(lambda: not visible(desktop, TITLE), 60, "the notice to close")


def test_one_showing_per_login_reported_again_to_a_restarted_service(
    desktop: Desktop, shown: tuple[NoticeDisplay, Reports]
) -> None:
    notice, reports = shown
    notice.offer("First text.", "2")
    wid = wait_until(lambda: visible(desktop, TITLE), 60, "the notice")[0]
    assert notice_property(desktop, wid) == "First text."
    wait_until(lambda: reports.of("shown") == [["n", "shown", "2", 0]], 60, "the showing")
    press_ok(desktop)
    wait_until(lambda: reports.of("ok"), 60, "the OK reported")
    wait_until(lambda: visible(desktop, INDICATOR_TITLE), 60, "the indicator")

    # The service went away: no indicator; it came back with the same text (a newer policy):
    # the showing is reported again with its age, and the pupil is not shown it twice.
    notice.connected(False)
    wait_until(lambda: not visible(desktop, INDICATOR_TITLE), 60, "the indicator hidden")
    notice.connected(True)
    notice.offer("First text.", "3")
    wait_until(lambda: visible(desktop, INDICATOR_TITLE), 60, "the indicator back")
    again = wait_until(lambda: reports.of("shown")[1:], 60, "the showing reported again")
    assert again[0][:3] == ["n", "shown", "2"] and isinstance(again[0][3], int)
    assert not visible(desktop, TITLE)

    # Another text: shown at the next connection.
    notice.offer("Second text.", "4")
    wid = wait_until(lambda: visible(desktop, TITLE), 60, "the new notice")[0]
    assert notice_property(desktop, wid) == "Second text."
    wait_until(lambda: ["n", "shown", "4", 0] in reports.of("shown"), 60, "its showing")
    assert not visible(desktop, INDICATOR_TITLE)  # the notice first, then the indicator


def test_clicking_the_indicator_shows_the_notice_again(
    desktop: Desktop, shown: tuple[NoticeDisplay, Reports]
) -> None:
    notice, reports = shown
    notice.offer("Read me again.", "5")
    press_ok(desktop)
    indicator = wait_until(lambda: visible(desktop, INDICATOR_TITLE), 60, "the indicator")[0]
    desktop.xdotool("mousemove", "--window", indicator, "10", "5", "click", "1")
    wid = wait_until(lambda: visible(desktop, TITLE), 60, "the notice shown again")[0]
    assert notice_property(desktop, wid) == "Read me again."
    wait_until(lambda: len(reports.of("shown")) == 2, 60, "the second showing")


def test_a_session_without_a_display_says_it_cannot_show_the_notice() -> None:
    reports = Reports()
    NoticeDisplay(None, reports, x11_notice).offer("Text.", "1")
    assert reports.items == [["n", "failed", "no X display in this session to show it on"]]


def test_a_display_that_closes_the_first_connection_still_gets_the_notice(
    desktop: Desktop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notice_window, "OPEN_RETRY_S", 0.1)
    tries: list[str] = []

    def resetting(display: str) -> Screen:  # an X server in its reset after the last client
        tries.append(display)
        if len(tries) == 1:
            raise ConnectionResetError("closed during setup")
        return x11_notice(display)

    reports = Reports()
    notice = NoticeDisplay(desktop.display, reports, resetting)
    try:
        notice.offer("Text.", "1")
        wait_until(lambda: visible(desktop, TITLE), 60, "the notice")
        wait_until(lambda: reports.of("shown"), 60, "the showing")
        assert tries == [desktop.display] * 2 and not reports.of("failed")
    finally:
        notice.stop()


def test_a_display_that_never_opens_is_reported_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notice_window, "OPEN_RETRY_S", 0.01)
    tries: list[str] = []

    def refusing(display: str) -> Screen:
        tries.append(display)
        raise ConnectionRefusedError(display)

    reports = Reports()
    notice = NoticeDisplay(":99", reports, refusing)
    notice.offer("Text.", "1")
    wait_until(lambda: reports.of("failed"), 30, "the failure reported")
    notice.stop()
    assert len(tries) == notice_window.OPEN_TRIES
    assert reports.items == [["n", "failed", "cannot open the display: ConnectionRefusedError"]]


def test_a_helper_stopped_between_tries_reports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notice_window, "OPEN_RETRY_S", 30.0)
    tries: list[str] = []
    reports = Reports()
    notice: NoticeDisplay

    def refusing(display: str) -> Screen:  # the login ends while the server refuses
        tries.append(display)
        threading.Thread(target=notice.stop).start()
        raise ConnectionRefusedError(display)

    notice = NoticeDisplay(":99", reports, refusing)
    notice.offer("Text.", "1")
    wait_until(lambda: tries, 30, "the first try")
    notice.stop()
    assert tries == [":99"] and reports.items == []
