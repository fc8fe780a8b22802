"""The monitoring notice on the pupil's screen (X11), shown by the per-login helper.

    helper ── offer(text, version) ──▶ NoticeDisplay thread (its own X connection)
        notice window: the policy's text and an OK button (Return, Enter or Space press it)
          mapped ──▶ report ["n", "shown", version, age_ms]
          OK / closed by the window manager ──▶ report ["n", "ok" | "closed", version, age_ms]
        then the indicator: a small always-on-top window "This computer is monitored", shown
        while the helper is connected to the service; clicking it shows the notice again.

Why plain X windows (python-xlib, which the helper already uses to capture keys) and not
tkinter or a tray icon: tkinter needs the python3-tk package on Debian, and a system tray needs
a tray host that a bare X server or a minimal school desktop does not have. The indicator asks
a window manager to keep it above others and out of the task bar (_NET_WM_STATE) and, without
one, raises itself when covered (at most once a second).

Core X fonts draw Latin-1 only: other characters are drawn as close ASCII or "?". The full
text, as the policy has it, is also on the window as the UTF-8 property _SAFEGUARD_NOTICE
(for assistive tools and tests).

Windows: not built and never exercised. The Windows agent has no per-login helper yet
(agent/sensors/keyboard_local.py runs in the service's own session); a Windows helper would
show the same text with a message box and report it over the same protocol.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

Report = Callable[[list[object]], None]


class Screen(Protocol):
    """The windows on one X connection (agent/notice_x11.py; a test may give another)."""

    notice_text: str | None  # the notice on screen, if one is
    notice_version: str

    def show_notice(self, text: str, version: str) -> None: ...

    def close_notice(self) -> None: ...

    def indicator(self, on: bool) -> None: ...

    def events(self) -> list[str]:
        """What happened since last asked: "mapped", "ok", "closed", "reopen"."""
        ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


# How soon a new text, the service coming or going, or stop() is seen (X events wake it at
# once): once a second costs an idle helper a quarter of what four times a second did.
NOTICE_POLL_S = 1.0
OPEN_TRIES = 5  # opening the display, 2 s apart: an X server resetting (its last client just
OPEN_RETRY_S = 2.0  # left) closes new connections for a moment; the notice must not be lost to it
TITLE = "Monitoring notice"
INDICATOR_TITLE = "This computer is monitored"
TEXT_PROPERTY = "_SAFEGUARD_NOTICE"
FONTS = (  # the first the X server has; "fixed" is always there
    "-*-helvetica-medium-r-normal--17-*-*-*-*-*-iso8859-1",
    "-*-helvetica-medium-r-normal--14-*-*-*-*-*-iso8859-1",
    "9x15",
    "fixed",
)
WIDTH, MARGIN, BUTTON_W, BUTTON_H = 560, 24, 96, 32
# Typographic quotes, dashes, ellipsis, no-break space: as plain ASCII (escaped: ruff RUF001).
_ASCII = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                        "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " "})  # fmt: skip


def latin1(text: str) -> str:
    """What a core X font can draw: Latin-1, with common typographic marks made plain."""
    return text.translate(_ASCII).encode("latin-1", "replace").decode("latin-1")


def wrap(text: str, width: int, measure: Callable[[str], int]) -> list[str]:
    """Lines of at most `width` pixels, broken between words (a word wider than a line is
    broken between characters)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if measure(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if line and measure(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
    if line:
        lines.append(line)
    return lines


class NoticeDisplay:
    """Shows the notice once per login (again only if the service offers another text), and the
    indicator after it; reports each showing through `report` (from its own thread)."""

    def __init__(self, display: str | None, report: Report,
                 screen: Callable[[str], Screen]) -> None:  # fmt: skip
        self._display = display
        self._screen = screen
        self._report = report
        self._lock = threading.Lock()
        self._wanted: tuple[str, str] | None = None  # (text, version) to put on screen
        self._shown: tuple[str, str, float] | None = None  # (text, version, monotonic)
        self._connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, text: str, version: str) -> None:
        """The service's notice (at every connection): shown unless this text already was, in
        which case that showing is reported again (the service may have restarted)."""
        with self._lock:
            shown = self._shown
            if shown is not None and shown[0] == text:
                self._report(["n", "shown", shown[1], _age_ms(shown[2])])
                return
            self._wanted = (text, version)
            if not self._display:
                self._report(["n", "failed", "no X display in this session to show it on"])
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="notice", daemon=True)
                self._thread.start()

    def connected(self, on: bool) -> None:
        """Whether the service is there: the indicator is shown only while it is."""
        with self._lock:
            self._connected = on

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _take(self) -> tuple[tuple[str, str] | None, bool]:
        with self._lock:
            wanted, self._wanted = self._wanted, None
            return wanted, self._connected

    def _mark_shown(self, text: str, version: str) -> None:
        with self._lock:
            self._shown = (text, version, time.monotonic())
        self._report(["n", "shown", version, 0])

    def _dismissed(self, how: str) -> None:
        with self._lock:
            shown = self._shown
        if shown is not None:
            self._report(["n", how, shown[1], _age_ms(shown[2])])

    def _open(self) -> Screen | None:
        for attempt in range(1, OPEN_TRIES + 1):
            try:
                return self._screen(self._display or "")
            except Exception as exc:  # no X server, refused, Xlib missing: say so at the end
                log.warning("notice.cannot_show kind=%s attempt=%d", type(exc).__name__, attempt)
                if attempt == OPEN_TRIES or isinstance(exc, ImportError):  # (no use waiting)
                    self._report(["n", "failed", f"cannot open the display: {type(exc).__name__}"])
                    return None
                if self._stop.wait(OPEN_RETRY_S):
                    return None  # stopping (a logout): nothing to report
        return None

    def _run(self) -> None:
        screen = self._open()
        if screen is None:
            return  # capture goes on; the service has the failure
        try:
            self._loop(screen)
        except Exception as exc:  # the X server went away (logout): nothing left to show on
            log.info("notice.display_gone kind=%s", type(exc).__name__)
        finally:
            screen.close()

    def _loop(self, screen: Screen) -> None:
        while not self._stop.is_set():
            wanted, connected = self._take()
            if wanted is not None:
                screen.show_notice(*wanted)
            screen.indicator(connected and screen.notice_text is None and self._shown is not None)
            for what in screen.events():
                if what == "mapped" and screen.notice_text is not None:
                    self._mark_shown(screen.notice_text, screen.notice_version)
                elif what in ("ok", "closed"):
                    screen.close_notice()
                    self._dismissed(what)
                elif what == "reopen" and self._shown is not None:
                    screen.show_notice(self._shown[0], self._shown[1])
            select.select([screen.fileno()], [], [], NOTICE_POLL_S)


def _age_ms(since: float) -> int:
    return max(0, int((time.monotonic() - since) * 1000))
