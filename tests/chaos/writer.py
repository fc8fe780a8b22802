"""Puts test alerts into an agent's outbox until killed, through full disks and damage.

    python -m tests.chaos.writer OUTBOX AGENT_ID

Prints `ok <id>` once a put has committed and `failed` when one raised (a full disk, a locked
file): the chaos count takes only the `ok` ids as produced, and allows as many extra stored
events as puts failed or were killed in flight (a put can commit and still raise on the way
out, or be killed between its commit and its print). Paced like tests/outbox_writer.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agent.outbox import Outbox
from protos import events_pb2

PAUSE_S = 0.002


def main() -> None:
    path, agent_id = Path(sys.argv[1]), sys.argv[2]
    box: Outbox | None = None
    while True:
        try:
            if box is None:
                box = Outbox.open(path, agent_id)
            event_id = box.put(events_pb2.Event(severity=2, test_alert=events_pb2.TestAlert()))
        except Exception as exc:  # whatever the fault: say so, go on
            print("failed", flush=True)
            print(f"writer.put_failed error={exc!r}", file=sys.stderr, flush=True)
            time.sleep(0.05)
            continue
        print(f"ok {event_id}", flush=True)
        time.sleep(PAUSE_S)


if __name__ == "__main__":
    main()
