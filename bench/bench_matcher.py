"""Benchmark of the keyword matcher: keystroke latency, bulk throughput, compile cost.

    .venv/bin/python bench/bench_matcher.py            # print the figures
    .venv/bin/python bench/bench_matcher.py --write    # also write bench/results/matcher.md

Deterministic inputs (seeded generator); timings are of this machine only.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import re
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rules.compile import Compiled
from rules.load import load_policy
from rules.match import Stream, match_text
from rules.normalise import fold
from rules.schema import Category, Policy, Term

# One string reads better than 250 quoted words.
VOCAB = (  # noqa: SIM905
    "the a to and of in is it you that was for on are with as we they be at one have "
    "this from or had by word but what some can out other were all there when up use "
    "your how said an each she which do their time if will way about many then them "
    "write would like so these her long make thing see him two has look more day could "
    "go come did number sound no most people my over know water than call first who "
    "may down side been now find any new work part take get place made live where after "
    "back little only round man year came show every good me give our under name very "
    "through just form sentence great think say help low line differ turn cause much "
    "mean before move right boy old too same tell does set three want air well also play "
    "small end put home read hand port large spell add even land here must big high such "
    "homework class lesson teacher maths science history football minecraft roblox"
).split()
SPICE = ["kill myself", "our little secret", "k.i.l.l", "send nudes", "0nline casino", "weed"]
RESULTS = Path(__file__).resolve().parent / "results" / "matcher.md"


def corpus(rng: random.Random, n_chars: int, spice: float) -> str:
    words: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(SPICE) if rng.random() < spice else rng.choice(VOCAB)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)[:n_chars]


def messages(text: str, size: int = 200) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def generated_policy(base: Policy, n: int, rng: random.Random) -> Policy:
    syll = [a + b for a in "bcdfghjklmnprstvwz" for b in "aeiou"]
    seen: set[str] = set()
    terms = []
    while len(terms) < n:
        phrase = "".join(rng.choice(syll) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.2:
            phrase += " " + "".join(rng.choice(syll) for _ in range(2))
        if phrase not in seen:
            seen.add(phrase)
            terms.append(Term(phrase, rng.randint(1, 10), "generated"))
    cat = Category("generated", "generated", True, 10, 12, tuple(terms))
    profiles = tuple(replace(p, categories=(*p.categories, "generated")) for p in base.profiles)
    return replace(base, categories=(*base.categories, cat), profiles=profiles)


def rss() -> int:
    with Path("/proc/self/statm").open() as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def compile_cost(policy: Policy) -> tuple[Compiled, float, float, float, float]:
    gc.unfreeze()
    gc.collect()
    rss0 = rss()
    tracemalloc.start()
    t0 = time.perf_counter()
    compiled = Compiled(policy, "ks2")
    elapsed = time.perf_counter() - t0
    gc.freeze()  # as the agent should: keep the compiled policy out of GC scans
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return compiled, elapsed, current / 2**20, peak / 2**20, (rss() - rss0) / 2**20


def keystrokes(compiled: Compiled, text: str) -> tuple[float, float, float, float]:
    stream = Stream(compiled)
    feed, clock = stream.feed, time.perf_counter_ns
    lat = []
    t0 = time.perf_counter()
    for ch in text:
        a = clock()
        feed(ch)
        lat.append(clock() - a)
        if ch == "\n":
            stream.reset()
    total = time.perf_counter() - t0
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000  # noqa: E731
    return len(text) / total, pick(0.5), pick(0.99), lat[-1] / 1000


def bulk(compiled: Compiled, msgs: list[str]) -> float:
    t0 = time.perf_counter()
    for m in msgs:
        match_text(compiled, m)
    return sum(map(len, msgs)) / (time.perf_counter() - t0)


def naive(compiled: Compiled, msgs: list[str]) -> float:
    """One big regular expression over the case-folded text: no evasion handling at all."""
    phrases = sorted({t.phrase.lower() for c in compiled.categories for t in c.terms})
    rx = re.compile(r"\b(?:" + "|".join(map(re.escape, phrases)) + r")\b")
    t0 = time.perf_counter()
    for m in msgs:
        rx.findall(fold(m))
    return sum(map(len, msgs)) / (time.perf_counter() - t0)


def run() -> str:
    load0 = os.getloadavg()[0]
    rng = random.Random(4)
    base = load_policy()
    clean = corpus(rng, 400_000, 0.0)
    mixed = corpus(rng, 400_000, 0.002)
    typed = corpus(rng, 100_000, 0.002).replace(" the ", " the\n")
    rows = []
    big = generated_policy(base, 50_000, rng)
    for label, policy in (("shipped lists", base), ("+ 50,000 generated terms", big)):
        compiled, secs, cur, peak, drss = compile_cost(policy)
        cps, p50, p99, mx = keystrokes(compiled, typed)
        msgs_clean, msgs_mixed = messages(clean), messages(mixed)
        compiled.bulk_gate  # noqa: B018  # built once (with the automata), on first use: not throughput
        b_clean, b_mixed = bulk(compiled, msgs_clean), bulk(compiled, msgs_mixed)
        b_long = bulk(compiled, [mixed])
        nv = naive(compiled, msgs_mixed)
        rows.append((label, compiled.pattern_count, secs, cur, peak, drss, cps, p50, p99, mx,
                     b_clean, b_mixed, b_long, nv))  # fmt: skip
    return report(rows, (load0, os.getloadavg()[0]))


def report(rows: list[tuple[object, ...]], load: tuple[float, float]) -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())  # fmt: skip
    out = ["# Matcher benchmark", "",
           "Command: `.venv/bin/python bench/bench_matcher.py --write`", "",
           f"Machine: {os.cpu_count()} CPUs (`nproc`), {cpu}; Python {platform.python_version()}"
           f" on {platform.system()} {platform.release()}; load average (1 min) {load[0]:.2f}"
           f" at the start, {load[1]:.2f} at the end", "",
           "| policy | patterns | compile s | retained MB (tracemalloc) | peak MB | RSS delta MB "
           "| stream chars/s | p50 µs/key | p99 µs/key | max µs/key | bulk chars/s, clean "
           "| bulk chars/s, 0.2% spiced | bulk chars/s, one 400k text | naive regex chars/s "
           "| bulk/naive |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        label, n, secs, cur, peak, drss, cps, p50, p99, mx, bc, bm, bl, nv = r
        out.append(f"| {label} | {n:,} | {secs:.2f} | {cur:.1f} | {peak:.1f} | {drss:.1f} | "
                   f"{cps:,.0f} | {p50:.1f} | {p99:.1f} | {mx:.0f} | {bc:,.0f} | {bm:,.0f} | "
                   f"{bl:,.0f} | {nv:,.0f} | {bm / nv:.2f} |")  # type: ignore[operator]  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    args = parser.parse_args()
    text = run()
    sys.stdout.write(text)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text + NOTES, encoding="utf-8")
    return 0


NOTES = """
Inputs: seeded pseudo-English from a 250-word school vocabulary; "spiced" text has 0.2% of
its words replaced by listed phrases and evasions (`k.i.l.l`, `0nline casino`). Keystroke
figures feed 100,000 characters one at a time through `Stream.feed` (a line break every
few words calls `reset`), timing each call with `perf_counter_ns`. Bulk figures call
`match_text` on 200-character messages, and once on the whole 400,000-character spiced
text (as `safeguard-rules check` does with its stdin). The naive baseline is one
alternation regex with `\\b` boundaries over the case-folded text: it handles no evasion,
no weights and no combinations, so it is a floor for cost, not a rival in quality.
"""

if __name__ == "__main__":
    sys.exit(main())
