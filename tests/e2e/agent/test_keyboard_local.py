"""The Windows keyboard path (agent/sensors/keyboard_local.py: pynput's listener, the window
source, the matcher, in one process), exercised as far as Linux can: pynput's X11 backend on a
real X server, xdotool typing into real xterm windows. What this cannot show is the Windows
low-level hook and Win32 window titles themselves (agent/sensors/keyboard_windows.py)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

import pytest

from tests.e2e.agent.desktop import Desktop

pytestmark = pytest.mark.e2e


class Child:
    """keyboard_local_child.py, its JSON lines read on a thread."""

    def __init__(self, desktop: Desktop) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.agent.keyboard_local_child"],
            env=desktop.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        assert self.proc.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self.reader.start()
        first = self.next(60)
        assert first == {"ready": True}, self.stderr()

    def _read(self, out: IO[str]) -> None:
        for line in out:
            self.lines.put(json.loads(line))

    def next(self, timeout: float = 60) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no event from the sensor within {timeout}s: {self.stderr()}")

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None or self.proc.stderr.closed:
            return "(still running)"
        return self.proc.stderr.read()[-3000:]

    def stop(self) -> int:
        self.proc.terminate()
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(30)
        self.reader.join(30)  # it reads to the end of the child's output, then the pipes close
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code


@pytest.fixture
def child(desktop: Desktop) -> Iterator[Child]:
    desktop.window("notes")
    desktop.window("Enter password")
    desktop.focus("notes")
    running = Child(desktop)
    try:
        yield running
    finally:
        running.stop()


def keyword(event: dict[str, Any]) -> tuple[str, str, str]:
    found = event["keyword"]
    return found["category"], found["context"], found["windowTitle"]


def test_typed_terms_are_detected_with_their_window_and_a_password_prompts_keys_are_not(
    desktop: Desktop, child: Child
) -> None:
    desktop.type("I live in Scunthorpe\n")  # innocent
    desktop.type("I will k.i.l.l you\n")
    assert keyword(child.next()) == ("bullying", "I will k.i.l.l you", "notes")
    desktop.focus("Enter password")
    desktop.type("dont tell your mum\n")  # a secret: dropped before the matcher
    desktop.focus("notes")
    desktop.type("i want to kilx")
    desktop.key("BackSpace")
    desktop.type("l myself\n")
    assert keyword(child.next()) == ("suicide", "i want to kill myself", "notes")
    assert child.lines.empty()
    assert child.stop() == 0  # SIGTERM asks the sensor to stop: it does, and the hook goes

