"""CPU per event of one verifier process's work, alone: check a signed batch, answer with rows.

    .venv/bin/python bench/bench_verifier.py

The same 500-event batches as bench_pipeline.py (heartbeats with 5% keyword detections),
through `verifier_worker.answer` in this process: signature, chain, decoding every event,
the Arrow columns and the IPC stream the writer receives. No pipe and no collector, so the
figure is the verifier's own cost. Reports the best of several rounds (the least disturbed by
anything else on the host) in microseconds of CPU per event.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_pipeline import Agent, machine, make_events

from collector.intake import verifier_worker
from protos import envelope

NONCE = b"n" * envelope.NONCE_LEN


def request_body(batch_size: int, detections: float) -> bytes:
    agent = Agent("0b9f3c1e-bench-agent", Ed25519PrivateKey.generate())
    make_events(agent, batch_size, detections)
    batch = envelope.make_batch(agent.key, agent.agent_id, NONCE, 1,
                                envelope.genesis(agent.agent_id), agent.raws, agent.hashes)
    key = agent.key.public_key().public_bytes_raw()
    frame = verifier_worker.request(key, NONCE, batch.SerializeToString())
    return frame[verifier_worker.HEADER.size :]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--detections", type=float, default=0.05)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--per-round", type=int, default=40, help="batches per round")
    args = p.parse_args()
    body = request_body(args.batch, args.detections)
    keys = verifier_worker.KeyCache()
    status, _ = verifier_worker.answer(keys, body)
    if status != verifier_worker.OK:
        raise SystemExit("the benchmark's batch was refused")
    best = float("inf")
    for _ in range(args.rounds):
        started = time.process_time()
        for _ in range(args.per_round):
            verifier_worker.answer(keys, body)
        best = min(best, (time.process_time() - started) / args.per_round / args.batch)
    print(f"machine: {machine()}")
    print(f"batch={args.batch}  detections={args.detections}  "
          f"cpu_us_per_event={best * 1e6:.2f}  events_per_s_per_core={1 / best:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
