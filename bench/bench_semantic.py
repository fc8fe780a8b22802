"""Benchmark of the semantic stage in one process, as the agent service runs it.

    .venv/bin/python bench/bench_semantic.py            # print the figures
    .venv/bin/python bench/bench_semantic.py --write    # also write bench/results/semantic.md

Loads the shipped policy's model (onnxruntime, one thread) and bank, then judges every
sentence of the open corpus one at a time (as the keyboard detector does at Enter), then each
again after the one before it (the context window: the earlier one judged first, as the
agent did when it was finished, then the pair), and
reports the time per judged sentence (tokenising, the model, the vote over the bank) at
p50/p99/max, the time to embed the bank on a cold start, and the process's RSS at each step
(psutil; glibc's free memory returned with malloc_trim, as the agent does).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rules.embed import MODEL_DIR, SentenceModel  # noqa: E402 -- after the path is set
from rules.evaluate import DEFAULT_CORPUS, read_folder  # noqa: E402
from rules.load import load_policy  # noqa: E402
from rules.semantic import Bank, SemanticJudge, sentences  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "semantic.md"


def rss() -> float:
    return psutil.Process().memory_info().rss / 2**20


def trim() -> None:
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    args = ap.parse_args()
    lines: list[str] = []
    base = rss()
    policy = load_policy()
    sem = policy.semantic
    assert sem is not None
    after_policy = rss()
    t0 = time.perf_counter()
    model = SentenceModel(MODEL_DIR / sem.model, sem.model_sha256)
    load_s = time.perf_counter() - t0
    trim()
    after_model = rss()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.process_time()
        bank = Bank(sem.exemplars, model, Path(tmp))
        bank_cpu = time.process_time() - t0
        trim()
        after_bank = rss()
        t0 = time.process_time()
        Bank(sem.exemplars, model, Path(tmp))
        cached_cpu = time.process_time() - t0
    judge = SemanticJudge(policy, "ks2", model, bank)
    texts = [t.text for part in ("alert", "innocent")
             for t in read_folder(DEFAULT_CORPUS / "open" / part, part == "alert")]  # fmt: skip
    pieces = [t[a:b] for t in texts for a, b in sentences(t, sem.min_words)
              if len(t[a:b].split()) >= sem.min_words]  # fmt: skip
    times, cpu_times = [], []  # wall clock; and this thread's CPU, which other load leaves be
    for piece in pieces:
        t0, c0 = time.perf_counter(), time.thread_time()
        judge.judge(piece)
        times.append(1000 * (time.perf_counter() - t0))
        cpu_times.append(1000 * (time.thread_time() - c0))
    times.sort()
    cpu_times.sort()
    # As the agent judges a sentence typed after another: the earlier one was judged when it
    # was finished (untimed here), then the whole text, the earlier one skipped but the
    # context of the later (its vector kept from its own judging: no second model run).
    after_times = []
    for before, piece in pairwise(pieces):
        # (a sentence that ended at a new line is joined by one: with a space the two would
        # be one long sentence, embedded whole)
        text = before + (" " if before.rstrip()[-1:] in (".", "!", "?") else "\n") + piece
        judge.judge(before)
        c0 = time.thread_time()
        judge.judge(text, skip={before.strip()})
        after_times.append(1000 * (time.thread_time() - c0))
    after_times.sort()
    after_judging = rss()
    cpu = psutil.cpu_freq()
    lines.append(f"Machine: {platform.platform()}, {os.cpu_count()} CPUs "
                 f"({cpu.max if cpu else '?'} MHz), Python {platform.python_version()}, "
                 f"onnxruntime one thread.")  # fmt: skip
    lines.append("")
    innocent = sum(e.category == 'innocent' for e in sem.exemplars)
    lines.append(f"Bank: {len(sem.exemplars)} exemplars ({innocent} "
                 f"innocent); k={sem.k}, temperature={sem.temperature}, "
                 f"vote={sem.vote}.")  # fmt: skip
    lines.append("")
    lines.append("| step | figure |")
    lines.append("|---|---|")
    lines.append(f"| model load | {load_s * 1000:.0f} ms |")
    lines.append(f"| bank embedded, cold (CPU) | {bank_cpu:.1f} s |")
    lines.append(f"| bank from the cache (CPU) | {cached_cpu * 1000:.0f} ms |")
    lines.append(f"| one sentence judged, n={len(times)}: p50 / p99 / max | "
                 f"{statistics.median(times):.2f} / {times[int(0.99 * len(times))]:.2f} / "
                 f"{times[-1]:.2f} ms |")  # fmt: skip
    p50_cpu, p99_cpu = statistics.median(cpu_times), cpu_times[int(0.99 * len(cpu_times))]
    lines.append(f"| the same, CPU time of the judging thread: p50 / p99 / max | "
                 f"{p50_cpu:.2f} / {p99_cpu:.2f} / {cpu_times[-1]:.2f} ms |")  # fmt: skip
    lines.append(f"| a sentence after another (with its context), CPU time, n={len(after_times)}: "
                 f"p50 / p99 / max | {statistics.median(after_times):.2f} / "
                 f"{after_times[int(0.99 * len(after_times))]:.2f} / {after_times[-1]:.2f} ms |")
    lines.append(f"| load average (1 min) at the end | {os.getloadavg()[0]:.2f} |")
    lines.append(f"| RSS: start / policy loaded / model / bank / after judging | {base:.1f} / "
                 f"{after_policy:.1f} / {after_model:.1f} / {after_bank:.1f} / "
                 f"{after_judging:.1f} MB |")  # fmt: skip
    lines.append(f"| the stage's share (model + bank, after judging) | "
                 f"{after_judging - after_policy:.1f} MB |")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.write:
        RESULTS.write_text("# Semantic stage: time per sentence and memory\n\n```sh\n"
                           ".venv/bin/python bench/bench_semantic.py --write\n```\n\n"
                           + text + "\n", encoding="utf-8")  # fmt: skip


if __name__ == "__main__":
    main()
