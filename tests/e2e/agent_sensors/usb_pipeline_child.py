"""The real agent service with only the USB sensor, in the venv, under the umockdev testbed of
its parent (usb_testbed.py starts it, so it inherits LD_PRELOAD and UMOCKDEV_DIR).

The agent is already enrolled in --state. Prints {"ready": true} once the sensor has judged
the devices present at start; runs until SIGTERM (as systemd stops it), then shuts down as the
service does (what it can ship in flush_s is shipped). --accounts stands in for the
logged-in accounts (psutil.users()), as in usb_child.py.
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

from agent.identity import StateDir
from agent.sensors import Sensor
from agent.sensors.registry import SensorSettings, SensorSpec
from agent.sensors.usb_linux import UsbSensor
from agent.service import Service, ServiceConfig


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True, type=Path, help="an enrolled agent's state")
    parser.add_argument("--accounts", default="", help="comma-separated logged-in accounts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    accounts = [a for a in args.accounts.split(",") if a]
    made: list[UsbSensor] = []

    def usb(settings: SensorSettings) -> Sensor:
        made.append(UsbSensor(accounts=lambda: accounts, poll_s=0.1))
        return made[-1]

    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def announce() -> None:  # the supervisor builds the sensor on its own thread
        while not stop.is_set():
            if made and made[-1].ready.wait(0.05):
                print(json.dumps({"ready": True}), flush=True)
                return
            stop.wait(0.05)

    threading.Thread(target=announce, name="announce-ready", daemon=True).start()
    service = Service(StateDir(args.state), ServiceConfig(heartbeat_s=0.5, flush_s=5),
                      sensors=[SensorSpec("usb", usb)])  # fmt: skip
    return service.run(stop)


if __name__ == "__main__":
    sys.exit(main())
