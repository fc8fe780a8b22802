"""The USB sensor as the agent runs it, in the venv, under the umockdev testbed of its parent.

Prints one JSON line per emitted event (protobuf JSON), and {"ready": true} once the devices
present at start are judged. --accounts (or the file --accounts-file, read as the sensor asks)
stands in for the logged-in accounts (psutil.users()).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from google.protobuf.json_format import MessageToDict

from agent.policy import ActivePolicy
from agent.sensors import SensorContext
from agent.sensors.usb_linux import UsbSensor
from protos import events_pb2
from rules.load import load_policy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", default="", help="comma-separated logged-in accounts")
    parser.add_argument("--accounts-file", help="read them from this file, as they change")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    accounts = [a for a in args.accounts.split(",") if a]
    active = ActivePolicy(0, load_policy())
    lock = threading.Lock()

    def emit(event: events_pb2.Event) -> None:
        with lock:
            print(json.dumps(MessageToDict(event)), flush=True)

    def logged_in() -> list[str]:
        if args.accounts_file:
            text = Path(args.accounts_file).read_text()
            return [a.strip() for a in text.split(",") if a.strip()]
        return accounts

    sensor = UsbSensor(accounts=logged_in, poll_s=0.1)

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
