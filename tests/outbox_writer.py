"""Puts test alerts into an agent's outbox until killed, printing each id once committed.

    python -m tests.outbox_writer OUTBOX AGENT_ID

Paced like a busy sensor, not a tight loop: a process that takes SQLite's write lock again the
instant it lets go starves every other writer (the agent itself) past their busy timeout, which
is a property of the loop, not of the agent.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agent.outbox import Outbox
from protos import events_pb2

PAUSE_S = 0.002


def main() -> None:
    box = Outbox.open(Path(sys.argv[1]), sys.argv[2])
    while True:
        event_id = box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert()))
        print(event_id, flush=True)
        time.sleep(PAUSE_S)


if __name__ == "__main__":
    main()
