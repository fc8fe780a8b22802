"""Screenshot evidence on a real X server: a detection typed into a real window (Xvfb) at the
policy's severity yields a sealed picture of that window, which opens with the collector's key
to the pixels an independent `xwd -id` capture shows after the same downscale; below the
severity, in a password window, with no evidence key, or for a window that has gone: none.

The keys come from a stand-in helper process through the real keyboard broker (as in
test_keyboard_coverage.py); the capture, sealing and evidence outbox are the real ones."""

from __future__ import annotations

import io
import os
import pwd
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from PIL import Image, ImageChops

from agent.evidence_store import EvidenceStore
from agent.policy import ActivePolicy
from agent.screenshots import Screenshotter
from agent.sensors import SensorContext
from agent.sensors.keyboard_broker import KeyboardBroker
from agent.sensors.screen_x11 import downscale
from protos import events_pb2
from protos.evidence import digest, open_sealed, public_key_of
from rules.load import DEFAULT_DIR, load_files, read_folder
from rules.load_evidence import evidence_key_file
from tests.conftest import require_tool
from tests.e2e.agent.conftest import wait_until
from tests.e2e.agent.desktop import Desktop
from tests.e2e.agent.pattern_window import CELL, COLS, ROWS, PatternWindow, colour, xwd_image

pytestmark = pytest.mark.e2e

ACCOUNT = pwd.getpwuid(os.getuid()).pw_name
AGENT = "agent-shots"
WIDTH = 320  # the policy's max_width: the 800-pixel window is downscaled 2.5 times
# Within this of the same downscale of xwd's capture, per channel (0..255): both read the
# same framebuffer, so any difference is in the resampling, which is the same code.
TOLERANCE = 2
SEVERE = "i want to die"  # suicide, severity 5 in the shipped lists
MILD = "going to stab him"  # violence, severity 2: below the rule's 4
SHOTS = f"""[screenshots]
enabled = true
max_width = {WIDTH}
budget_mb = 1
[[rule]]
profile = "ks2"
categories = ["suicide", "violence"]
min_severity = 4
"""

# A stand-in helper: hello, the window keys go to, the keys, then holds on until stdin closes.
PEER = """
import json, socket, sys
from agent.helper_protocol import encode
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(encode(["hello", {"display": "", "session": "x11"}]))
for line in sys.stdin:
    s.sendall(encode(json.loads(line)))
"""


_SHARED: dict[tuple[object, ...], object] = {}  # compiled lists, shared across the tests


_POLICIES: dict[bytes, ActivePolicy] = {}  # loading the lists takes seconds: once per key


def active_policy(key: bytes) -> ActivePolicy:
    if key in _POLICIES:
        return _POLICIES[key]
    files = {k: v for k, v in read_folder(DEFAULT_DIR).items() if not k.startswith("semantic")}
    files["screenshots.toml"] = SHOTS
    if key:
        files["evidence_key.toml"] = evidence_key_file(key)
    active = ActivePolicy(1, load_files(files), _shared=_SHARED)  # type: ignore[arg-type]
    return _POLICIES.setdefault(key, active)


class Rig:
    """The broker and the screenshot worker in this process; a helper process types."""

    def __init__(self, tmp: Path, desktop: Desktop, key: bytes) -> None:
        self.desktop = desktop
        self.active = active_policy(key)
        self.emitted: list[events_pb2.Event] = []
        self.statuses: list[events_pb2.Event] = []
        self.store = EvidenceStore(tmp / "evidence")
        self.shots = Screenshotter(self.store, AGENT, lambda: self.active, self._emit,
                                   self.statuses.append)  # fmt: skip
        self.path = tmp / "run" / "keyboard.sock"
        self.ctx = SensorContext(emit=self._emit, policy=lambda: self.active, state_dir=tmp,
                                 screenshots=self.shots)  # fmt: skip
        self.broker = KeyboardBroker(self.path, desktops=lambda: {ACCOUNT})
        self.threads = [threading.Thread(target=self.broker.run, args=(self.ctx,), daemon=True),
                        threading.Thread(target=self.shots.run, daemon=True)]  # fmt: skip
        for t in self.threads:
            t.start()
        wait_until(self.path.exists, 10, "the socket")
        self.helper = subprocess.Popen(
            [sys.executable, "-c", PEER, str(self.path)], env=desktop.env, text=True,
            stdin=subprocess.PIPE, cwd=Path(__file__).resolve().parents[3])  # fmt: skip

    def _emit(self, event: events_pb2.Event) -> str:
        self.emitted.append(event)
        return event.event_id

    def send(self, *message: object) -> None:
        import json

        assert self.helper.stdin is not None
        self.helper.stdin.write(json.dumps(list(message)) + "\n")
        self.helper.stdin.flush()

    def type_into(self, window_id: int, text: str, title: str = "chat",
                  password: bool = False) -> events_pb2.Event:  # fmt: skip
        """Type a line into the window; the detection's event once it is emitted."""
        before = len(self.detections())
        self.send("w", "chat-app", title, password, window_id)
        self.send("k", [*text, "<enter>"])
        # Generous: the first line also compiles the ks2 lists (seconds idle, a minute on a
        # loaded CI machine).
        return wait_until(lambda: self.detections()[before:], 180, "the detection")[0]  # type: ignore[no-any-return]

    def detections(self) -> list[events_pb2.Event]:
        return [e for e in self.emitted if e.WhichOneof("payload") == "keyword"]

    def close(self) -> None:
        assert self.helper.stdin is not None
        self.helper.stdin.close()
        self.helper.wait(30)
        self.broker.stop()
        self.shots.stop()
        for t in self.threads:
            t.join(10)


@pytest.fixture(scope="module")
def key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def rig(tmp_path: Path, desktop: Desktop, key: X25519PrivateKey) -> Iterator[Rig]:
    r = Rig(tmp_path, desktop, public_key_of(key))
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def window(desktop: Desktop) -> Iterator[PatternWindow]:
    w = PatternWindow(desktop.display)
    try:
        yield w
    finally:
        w.close()


def test_a_severe_detection_seals_its_windows_pixels_for_the_collector_alone(
    rig: Rig, window: PatternWindow, key: X25519PrivateKey
) -> None:
    event = rig.type_into(window.id, SEVERE)
    assert event.keyword.category == "suicide" and event.severity >= 4
    assert event.event_id and len(event.screenshot_sha256) == 32
    [waiting] = rig.store.waiting()
    sealed = waiting.path.read_bytes()
    assert waiting.event_id == event.event_id and digest(sealed) == event.screenshot_sha256
    assert b"PNG" not in sealed  # the PC holds ciphertext only
    picture = Image.open(io.BytesIO(open_sealed(key, sealed, AGENT, event.event_id)))
    assert picture.format == "PNG"
    got = picture.convert("RGB")
    expected = downscale(xwd_image(rig.desktop.display, window.id), WIDTH)
    assert got.size == expected.size == (WIDTH, WIDTH * ROWS // COLS)
    bands: Any = ImageChops.difference(got, expected).getextrema()  # (lo, hi) per channel
    worst = max(hi for _, hi in bands)
    assert worst <= TOLERANCE
    scale = WIDTH / (COLS * CELL)  # and it is the window drawn, cell by cell
    for row in range(ROWS):
        for col in range(COLS):
            centre = (int((col + 0.5) * CELL * scale), int((row + 0.5) * CELL * scale))
            rgb = colour(col, row)
            assert got.getpixel(centre) == (rgb >> 16, (rgb >> 8) & 255, rgb & 255)


def test_below_the_set_severity_no_picture_is_taken(rig: Rig, window: PatternWindow) -> None:
    event = rig.type_into(window.id, MILD)
    assert event.keyword.category == "violence" and event.severity < 4
    assert not event.screenshot_sha256 and rig.store.waiting() == []
    assert rig.shots.flush() is None  # not a drop: the policy does not ask for one


def test_a_password_window_is_never_captured(rig: Rig, window: PatternWindow) -> None:
    # The helper did not flag it, but its title names a sign-in: the service checks again.
    event = rig.type_into(window.id, SEVERE, title="School email - Sign in")
    assert event.severity >= 4 and not event.screenshot_sha256
    assert rig.store.waiting() == []


def test_a_window_that_has_gone_yields_the_event_without_a_picture_and_is_counted(
    rig: Rig, desktop: Desktop
) -> None:
    gone = PatternWindow(desktop.display)
    wid = gone.id
    gone.close()
    event = rig.type_into(wid, SEVERE)
    assert not event.screenshot_sha256 and rig.store.waiting() == []
    dropped = rig.shots.flush()
    assert dropped is not None and dropped.status.count == 1
    assert dropped.status.kind == events_pb2.AgentStatus.SCREENSHOTS_DROPPED
    assert "the window had gone" in dropped.status.detail


def test_without_the_collectors_evidence_key_nothing_is_captured_and_it_is_said_once(
    tmp_path: Path, desktop: Desktop, window: PatternWindow
) -> None:
    rig = Rig(tmp_path, desktop, b"")
    try:
        for _ in range(2):
            assert not rig.type_into(window.id, SEVERE).screenshot_sha256
        assert rig.store.waiting() == []
        [said] = rig.statuses
        assert said.status.kind == events_pb2.AgentStatus.SCREENSHOTS_DROPPED
        assert "no evidence key" in said.status.detail
    finally:
        rig.close()


def test_xwd_is_there_in_ci() -> None:
    require_tool("xwd")
