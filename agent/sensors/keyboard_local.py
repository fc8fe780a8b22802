"""Keyboard capture and matching in one process: the Windows path (NOT YET RUN ON WINDOWS).

On Windows, pynput installs a low-level keyboard hook (WH_KEYBOARD_LL) that sees the keys of
the desktop the process runs in; the agent then has to run in the user's session (a Windows
service in session 0 sees no desktop keys: the per-login helper design of Linux, over a named
pipe, is the way there and is not built yet). This sensor is what that helper would run:
KeyCapture (the hook only enqueues) ─▶ this thread ─▶ KeystrokeDetector ─▶ ctx.emit.
"""

from __future__ import annotations

import getpass
import logging
import queue
import sys
import threading

from agent.detector import KeystrokeDetector, alert_event
from agent.profiles import ProfileCache
from agent.sensors import SensorContext, SensorUnavailable
from agent.sensors.keyboard import KeyCapture, Unavailable, session_problem, window_source
from agent.sensors.keyboard_keys import WindowInfo
from rules.compile import Compiled
from rules.match import Alert
from rules.semantic import SemanticAlert, SemanticJudge

log = logging.getLogger(__name__)


HOOK_SWITCH_S = 0.001  # see run()


class LocalKeyboardSensor:
    name = "keyboard"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._profiles = ProfileCache()
        self.ready = threading.Event()  # set once the hook is installed: keys are heard

    def stop(self) -> None:
        self._stop.set()

    def run(self, ctx: SensorContext) -> None:
        problem = session_problem()
        if problem:
            raise SensorUnavailable(problem)
        account = getpass.getuser()
        # The OS waits for the hook, and the hook for the GIL, which another thread (the
        # matcher, a policy compile, the browser sensor) may hold for up to the switch
        # interval: 5 ms by default, 1 ms here (bench/results/keyhook.md has the figures).
        # Process-wide, so set only where a hook runs.
        sys.setswitchinterval(HOOK_SWITCH_S)
        try:
            windows = window_source()
            capture = KeyCapture()
            capture.start()
        except (Unavailable, ImportError, OSError) as exc:
            raise SensorUnavailable(f"cannot capture keys: {exc}") from None
        self.ready.set()

        def compiled() -> Compiled | None:
            active = ctx.policy()
            profile = self._profiles.profile_for(active.policy, account)
            return active.compiled(profile.name) if "keyboard" in profile.sensors else None

        def sink(alert: Alert | SemanticAlert, window: WindowInfo) -> None:
            ctx.emit(alert_event(alert, window, account, ctx.policy().policy))

        def semantic() -> SemanticJudge | None:
            if ctx.semantic is None:
                return None
            profile = self._profiles.profile_for(ctx.policy().policy, account)
            return ctx.semantic(profile.name) if "keyboard" in profile.sensors else None

        detector = KeystrokeDetector(compiled, sink, semantic=semantic)
        try:
            while not self._stop.is_set():
                try:
                    token = capture.keys.get(timeout=0.5)
                except queue.Empty:
                    detector.tick()  # a pause in typing: judge the sentences so far
                    continue
                if token is None:
                    break
                window = windows.active()
                detector.focus(window)
                if not window.password:
                    detector.key(token)
        finally:
            detector.settle()
            capture.stop()
            windows.close()
