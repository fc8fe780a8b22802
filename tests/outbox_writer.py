"""Puts test alerts into an agent's outbox until killed, printing each id once committed.

    python -m tests.outbox_writer OUTBOX AGENT_ID
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.outbox import Outbox
from protos import events_pb2


def main() -> None:
    box = Outbox.open(Path(sys.argv[1]), sys.argv[2])
    while True:
        event_id = box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert()))
        print(event_id, flush=True)


if __name__ == "__main__":
    main()
