"""The helper's X11 capture on a real X server (Xvfb, xterm, xdotool), without the service: what
it hands over is checked key by key, with the window each key went to.

None of this depends on timing: keys and focus changes come in one stream from the server, in
the order it processed them, and xdotool's `--sync` and its exit order the rest."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from itertools import groupby
from typing import Any

import pytest

from agent.sensors.keyboard_keys import ENTER, WindowInfo
from agent.sensors.keyboard_x11_record import X11Keyboard
from tests.conftest import require_tool
from tests.e2e.agent.conftest import wait_until
from tests.e2e.agent.desktop import Desktop

pytestmark = pytest.mark.e2e

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


class Got:
    """What the capture delivered: (window, keys) in order; `hold` stops the capture thread in
    its first delivery until released, so that later keys and focus changes pile up unread."""

    def __init__(self, hold: bool = False) -> None:
        self.items: list[tuple[WindowInfo, list[str]]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, window: WindowInfo, keys: list[str]) -> None:
        with self.lock:
            self.items.append((window, list(keys)))
        self.release.wait(30)

    def typed(self) -> list[str]:
        with self.lock:
            return [k for _, keys in self.items for k in keys]

    def by_window(self) -> list[tuple[str, bool, str]]:
        """(title, password, text) per run of keys typed into one window."""
        with self.lock:
            items = list(self.items)
        runs = groupby(items, key=lambda item: item[0])
        return [(w.title, w.password, "".join(k for _, keys in run for k in keys))
                for w, run in runs]  # fmt: skip


@pytest.fixture
def capture(desktop: Desktop) -> Iterator[tuple[X11Keyboard, Got]]:
    desktop.window("notes")
    desktop.focus("notes")
    got = Got()
    keyboard = X11Keyboard(desktop.display)
    keyboard.start(got)
    try:
        yield keyboard, got
    finally:
        got.release.set()
        keyboard.stop()


def window_id(desktop: Desktop, title: str) -> str:
    return desktop.xdotool("search", "--sync", "--name", f"^{title}$").split()[0]


def setxkbmap(desktop: Desktop, layout: str) -> None:
    subprocess.run([require_tool("setxkbmap"), "-display", desktop.display, layout], check=True,
                   timeout=30)  # fmt: skip


@pytest.mark.parametrize("layout", ["us", "gb"])
def test_every_printable_character_arrives_as_typed(desktop: Desktop, layout: str) -> None:
    """Shift, AltGr (xdotool types "@" on a British map with AltGr+Q) and the keymap's rules
    give each character; Enter, Backspace, Tab and shortcuts give their tokens."""
    setxkbmap(desktop, layout)
    desktop.window("notes")
    desktop.focus("notes")
    got = Got()
    keyboard = X11Keyboard(desktop.display)
    keyboard.start(got)
    try:
        desktop.type(PRINTABLE)
        desktop.key("Return", "BackSpace", "Tab", "ctrl+b", "KP_7", "Return")
        wait_until(lambda: got.typed().count(ENTER) == 2, what="the keys")
        assert got.typed() == [*PRINTABLE, ENTER, "<bs>", "<reset>", "<reset>", "7", ENTER]
        assert got.by_window() == [("notes", False, PRINTABLE + "<enter><bs><reset><reset>7"
                                                              "<enter>")]  # fmt: skip
    finally:
        keyboard.stop()
    assert not keyboard.alive()


def test_a_keyboard_layout_changed_while_capturing_is_followed(
    desktop: Desktop, capture: tuple[X11Keyboard, Got]
) -> None:
    _, got = capture
    desktop.type('"@')
    setxkbmap(desktop, "gb")  # "@" and '"' swap places: the keycodes typed next differ
    desktop.type('"@\n')
    wait_until(lambda: ENTER in got.typed(), what="the keys")
    assert "".join(got.typed()) == '"@"@<enter>'


def test_each_key_goes_with_the_window_it_was_typed_into_even_when_read_late(
    desktop: Desktop,
) -> None:
    """Keys, focus changes and more keys pile up while the capture thread is busy; read in
    one go, each key still goes with its own window, and a password prompt's keys with it."""
    for title in ("notes", "other", "Enter password"):
        desktop.window(title)
    desktop.focus("notes")
    notes, other, prompt = (window_id(desktop, t) for t in ("notes", "other", "Enter password"))
    got = Got(hold=True)
    keyboard = X11Keyboard(desktop.display)
    keyboard.start(got)
    try:
        desktop.key("a")
        wait_until(lambda: got.typed() == ["a"], what="the first key")  # the thread now waits
        desktop.xdotool("key", "b", "windowfocus", "--sync", other, "key", "c", "d",
                        "windowfocus", "--sync", prompt, "key", "e", "f",
                        "windowfocus", "--sync", notes, "key", "g", "Return")  # fmt: skip
        got.release.set()
        wait_until(lambda: ENTER in got.typed(), what="the keys")
    finally:
        got.release.set()
        keyboard.stop()
    assert got.by_window() == [
        ("notes", False, "ab"), ("other", False, "cd"), ("Enter password", True, "ef"),
        ("notes", False, "g<enter>"),
    ]  # fmt: skip
    assert max(len(keys) for _, keys in got.items) > 1  # they were read together


def test_a_title_change_is_seen_before_the_next_key(
    desktop: Desktop, capture: tuple[X11Keyboard, Got]
) -> None:
    """A page that becomes a sign-in page: the window's new title applies from the next key."""
    _, got = capture
    notes = window_id(desktop, "notes")
    desktop.type("a")
    wait_until(lambda: got.typed() == ["a"], what="the first key")
    desktop.xdotool("set_window", "--name", "Sign in - Accounts", notes)
    desktop.type("b")
    wait_until(lambda: len(got.typed()) == 2, what="the second key")
    desktop.xdotool("set_window", "--name", "notes again", notes)
    desktop.type("c")
    wait_until(lambda: len(got.typed()) == 3, what="the third key")
    assert got.by_window() == [("notes", False, "a"), ("Sign in - Accounts", True, "b"),
                               ("notes again", False, "c")]  # fmt: skip


class PlainWindows:
    """Top-level windows whose client asks for no focus events (unlike xterm or any toolkit),
    so that only the capture's own watch reports the focus leaving them."""

    def __init__(self, display: str) -> None:
        from Xlib import X
        from Xlib import display as xdisplay

        self._d: Any = xdisplay.Display(display)
        self._X = X
        self.ids: dict[str, str] = {}

    def add(self, title: str, x: int) -> str:
        screen = self._d.screen()
        window = screen.root.create_window(x, 400, 200, 100, 0, screen.root_depth,
                                           event_mask=self._X.ExposureMask)  # fmt: skip
        window.set_wm_name(title)
        window.map()
        self._d.sync()
        self.ids[title] = str(window.id)
        return self.ids[title]

    def close(self) -> None:
        self._d.close()


def test_focus_moving_between_windows_that_ask_for_no_focus_events_is_still_seen(
    desktop: Desktop, capture: tuple[X11Keyboard, Got]
) -> None:
    _, got = capture
    plain = PlainWindows(desktop.display)
    try:
        one, prompt = plain.add("plain one", 0), plain.add("Enter password", 300)
        notes = window_id(desktop, "notes")
        desktop.type("a")
        wait_until(lambda: len(got.typed()) == 1, what="a")
        for wid, key, count in ((one, "b", 2), (prompt, "c", 3), (notes, "d", 4)):
            desktop.xdotool("windowfocus", "--sync", wid)
            desktop.type(key)
            wait_until(lambda n=count: len(got.typed()) == n, what=key)  # type: ignore[misc]
    finally:
        plain.close()
    assert got.by_window() == [("notes", False, "a"), ("plain one", False, "b"),
                               ("Enter password", True, "c"), ("notes", False, "d")]  # fmt: skip


def test_with_focus_following_the_pointer_keys_go_to_the_window_under_it(
    desktop: Desktop, capture: tuple[X11Keyboard, Got]
) -> None:
    """No window manager and focus PointerRoot (Xvfb's default): the window under the pointer."""
    _, got = capture
    desktop.window("other")
    notes, other = window_id(desktop, "notes"), window_id(desktop, "other")
    desktop.xdotool("windowmove", "--sync", notes, "0", "0")
    desktop.xdotool("windowmove", "--sync", other, "600", "0")
    from Xlib import X
    from Xlib import display as xdisplay

    conn: Any = xdisplay.Display(desktop.display)
    try:
        conn.set_input_focus(X.PointerRoot, X.RevertToPointerRoot, X.CurrentTime)
        conn.sync()
    finally:
        conn.close()
    for wid, key, count in ((notes, "a", 1), (other, "b", 2), (notes, "c", 3)):
        desktop.xdotool("mousemove", "--window", wid, "--sync", "20", "20")
        desktop.type(key)
        wait_until(lambda n=count: len(got.typed()) == n, what=key)  # type: ignore[misc]
    assert got.by_window() == [("notes", False, "a"), ("other", False, "b"), ("notes", False, "c")]


def test_stopping_ends_the_capture_thread(capture: tuple[X11Keyboard, Got]) -> None:
    keyboard, _ = capture
    assert keyboard.alive()
    keyboard.stop()
    assert not keyboard.alive()
    keyboard.stop()  # twice is harmless
    assert shutil.which("xdotool")
