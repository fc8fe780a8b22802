"""The in-process keyboard sensor (the Windows path: pynput's listener, then the matcher) run on
the X server named by $DISPLAY, where pynput uses its X11 backend.

Prints one JSON line per emitted event (protobuf JSON), and {"ready": true} once the listener
hears keys. A separate process because pynput opens the display when it is imported.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from types import FrameType

from google.protobuf.json_format import MessageToDict

from agent.policy import ActivePolicy
from agent.sensors import SensorContext
from agent.sensors.keyboard_local import LocalKeyboardSensor
from protos import events_pb2
from rules.load import load_policy


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    active = ActivePolicy(0, load_policy())
    lock = threading.Lock()

    def emit(event: events_pb2.Event) -> None:
        with lock:
            print(json.dumps(MessageToDict(event)), flush=True)

    sensor = LocalKeyboardSensor()

    def on_term(signum: int, frame: FrameType | None) -> None:
        sensor.stop()

    signal.signal(signal.SIGTERM, on_term)
    thread = threading.Thread(target=sensor.run, args=(SensorContext(emit, lambda: active),))
    thread.start()
    while not sensor.ready.wait(0.1):
        if not thread.is_alive():
            sys.exit(1)
    print(json.dumps({"ready": True}), flush=True)
    thread.join()


if __name__ == "__main__":
    main()
