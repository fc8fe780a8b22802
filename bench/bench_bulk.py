"""Bulk matching throughput of one checkout, for paired runs against another.

    .venv/bin/python bench/bench_bulk.py                       # this checkout
    .venv/bin/python bench/bench_bulk.py --checkout ../main    # another one's rules/

Times ``match_text`` on the 200-character messages of ``bench_matcher.py`` (clean, and 0.2%
spiced) in CPU time of this process, best of ``--reps``, after building the bulk path's
automata (and gate, where the checkout has one). Run two checkouts in turn (A B A B ...) and
compare pair by pair: CPU time and pairing keep the ratio steady on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    root = args.checkout.resolve()
    sys.path[:0] = [str(root), str(root / "bench")]
    from bench_matcher import corpus, messages  # (the checkout's own, as its rules/)

    from rules.compile import Compiled
    from rules.load import load_policy
    from rules.match import match_text

    compiled = Compiled(load_policy(), "ks2")
    rng = random.Random(4)
    clean, mixed = messages(corpus(rng, 400_000, 0.0)), messages(corpus(rng, 400_000, 0.002))
    for m in clean[:50]:
        match_text(compiled, m)  # builds what the bulk path builds on first use

    def best(msgs: list[str]) -> float:
        secs = []
        for _ in range(args.reps):
            t0 = time.process_time()
            for m in msgs:
                match_text(compiled, m)
            secs.append(time.process_time() - t0)
        return sum(map(len, msgs)) / min(secs)

    print(f"{root.name}: clean {best(clean):,.0f} chars/s, 0.2% spiced {best(mixed):,.0f} "
          f"chars/s (load {os.getloadavg()[0]:.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
