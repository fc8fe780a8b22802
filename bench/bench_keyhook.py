"""How long the keyboard hook callback holds up a keystroke (the Windows path's concern).

    .venv/bin/python bench/bench_keyhook.py            # print the figures
    .venv/bin/python bench/bench_keyhook.py --write    # also write bench/results/keyhook.md

Windows removes a low-level keyboard hook that is slow to return, so `KeyCapture._press`
(agent/sensors/keyboard.py, pynput's on_press on Windows) only turns the key into a token and
puts it on a queue. What the OS waits for is that call *and* getting Python's GIL to make it:
if another thread of the process holds the GIL (the matcher, a policy compile, the browser
sensor reading history), the hook waits for it to be released, up to the interpreter's switch
interval (5 ms by default). Measured here with the real callback, the real matcher draining
the queue (KeystrokeDetector over the shipped KS2 policy), and a thread busy with pure-Python
work at the same time, at the switch interval given.

On Linux none of this applies: keys come from an X RECORD connection the X server does not
wait for (agent/sensors/keyboard_x11_record.py).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.detector import KeystrokeDetector, WindowInfo
from agent.sensors.keyboard import KeyCapture
from rules.compile import Compiled
from rules.load import load_policy

KEYS = 4000
RATE = 200  # keys per second: a fast typist's burst
TEXT = "the quick brown fox jumps over the lazy dog and i want to kill myself then "


class _Char:
    __slots__ = ("char", "vk")

    def __init__(self, ch: str) -> None:
        self.char, self.vk = ch, None


def _capture() -> KeyCapture:
    cap = KeyCapture()
    cap._named, cap._modifiers = {}, set()  # no pynput here: plain characters only
    return cap


def _callback_only(n: int = 200_000) -> list[float]:
    cap, keys = _capture(), [_Char(c) for c in TEXT]
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        cap._press(keys[i % len(keys)])
        out.append((time.perf_counter_ns() - t) / 1000)
        if cap.keys.qsize() > 1000:
            cap.keys = type(cap.keys)(maxsize=4096)
    return out


def _busy(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(10_000):  # pure Python: holds the GIL until asked to switch
            x += i * i


def _hooked(switch_s: float, busy: bool) -> list[float]:
    """Latency of each key from the moment it was due (the OS calling the hook) to the
    callback's return, with the matcher consuming keys and optionally a busy thread."""
    sys.setswitchinterval(switch_s)
    cap, keys = _capture(), [_Char(c) for c in TEXT]
    compiled: Compiled = Compiled(load_policy(), "ks2")
    detector = KeystrokeDetector(lambda: compiled, lambda alert, window: None)
    detector.focus(WindowInfo("notepad", "Untitled", False, 1))

    def match() -> None:
        while (token := cap.keys.get()) is not None:
            detector.key(token)

    stop = threading.Event()
    threads = [threading.Thread(target=match)]
    if busy:
        threads.append(threading.Thread(target=_busy, args=(stop,)))
    for t in threads:
        t.start()
    out = []
    start = time.perf_counter() + 0.05
    for i in range(KEYS):
        due = start + i / RATE
        while (left := due - time.perf_counter()) > 0:
            time.sleep(left)
        cap._press(keys[i % len(keys)])
        out.append((time.perf_counter() - due) * 1e6)
    stop.set()
    cap.keys.put(None)
    for t in threads:
        t.join()
    sys.setswitchinterval(0.005)
    return out


def _row(name: str, us: list[float]) -> str:
    q = statistics.quantiles(us, n=100)
    return f"| {name} | {len(us):,} | {q[49]:.1f} | {q[98]:.1f} | {max(us):,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows = [_row("callback alone (`KeyCapture._press`)", _callback_only())]
    for switch in (0.005, 0.001):
        for busy in (False, True):
            what = "matcher + busy thread" if busy else "matcher draining"
            rows.append(_row(f"due → returned, {what}, switch interval {switch * 1000:g} ms",
                             _hooked(switch, busy)))
    machine = f"{platform.machine()}, Python {platform.python_version()}, {platform.system()}"
    lines = [
        "| what | keys | p50 µs | p99 µs | max µs |",
        "|---|---|---|---|---|",
        *rows,
    ]
    print(machine)
    print("\n".join(lines))
    if args.write:
        out = Path(__file__).parent / "results" / "keyhook.md"
        head = (__doc__ or "").split("\n\n", 2)[2]
        body = "\n".join(lines)
        out.write_text(
            "# Keyboard hook latency\n\nCommand: `.venv/bin/python bench/bench_keyhook.py "
            f"--write`\n\nMachine: {machine}.\n\n{head.strip()}\n\n{body}\n"
        )


if __name__ == "__main__":
    main()
