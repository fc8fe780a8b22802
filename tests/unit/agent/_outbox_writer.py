"""A separate process that writes to an outbox in a loop, for the multi-process tests.

    python _outbox_writer.py PATH AGENT_ID COUNT [--chain-every N]

Prints each event_id on its own line only after `put` has committed it, so whatever the
parent has read was durably in the outbox. COUNT 0 means forever (until killed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.outbox import Outbox
from protos import events_pb2


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("agent_id")
    parser.add_argument("count", type=int)
    parser.add_argument("--chain-every", type=int, default=0)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    box = Outbox.open(args.path, args.agent_id)
    if args.chain_every:
        box.resume(0, b"")  # as if the collector had welcomed a fresh agent
    i = 0
    while args.count == 0 or i < args.count:
        i += 1
        event = events_pb2.Event(
            severity=1 + i % 5, test_alert=events_pb2.TestAlert(note=f"{args.tag}{i}")
        )
        sys.stdout.write(box.put(event) + "\n")
        sys.stdout.flush()
        if args.chain_every and i % args.chain_every == 0:
            box.chain_pending(args.chain_every)
    box.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
