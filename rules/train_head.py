"""Train the semantic stage's head (``semantic/head.toml``): a softmax over the sentence
vector, one row of weights per category and one for innocent text.

    python -m rules.train_head [--rules DIR] [--corpus DIR] [--out FILE]   # write the head
    python -m rules.train_head --cv                                       # 5-fold figures

Trained on the bank (the curated exemplars and the reference texts, as the vote sees them)
and the open corpus (its must-alert texts under their category, its innocent texts as
innocent); never on the held-back part, the fresh batches or the ordinary typing (that is
the false-alert measure). Full-batch gradient descent (Adam) from zero weights with an L2
penalty: the same texts and model give the same file. ``--cv`` trains on the bank and four
fifths of the open corpus and judges the fifth left out as a PC does (patterns, then the
vote and the head sentence by sentence), which is how the thresholds were chosen.
Dev-time only (numpy); a PC only reads the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rules.compile import Compiled
from rules.embed import MODEL_DIR, SentenceModel
from rules.evaluate import DEFAULT_CORPUS, Text, combined, pattern_judge, read_folder, score
from rules.evaluate import semantic_judge as as_judge
from rules.load import DEFAULT_DIR, load_policy
from rules.load_head import DIMS, HEAD, weights_sha256
from rules.readable import readable
from rules.schema import CATEGORIES, Policy, SemanticHead
from rules.semantic import Bank, SemanticJudge

if TYPE_CHECKING:
    import numpy as np

LABELS = (*CATEGORIES, "innocent")
L2 = 1e-5  # chosen by --cv (docs/detection.md)
STEPS = 600
RATE = 0.05
THRESHOLD = 0.8  # the mean of vote share and head probability that alerts (--cv)
# Per category (--cv and typing, docs/detection.md): each costs no open or typing false
# alert at 0.75 (bullying since stop 32's head, trained on the larger corpus); grooming at
# 0.75 costs two typing ones, at 0.775 none (and 3 of 3,140 out-of-fold open ones).
THRESHOLDS: dict[str, float] = {"extremism": 0.75, "discrimination": 0.75, "drugs": 0.75,
                                "pornography": 0.75, "violence": 0.75, "bullying": 0.75,
                                "grooming": 0.775}


class CachedModel:
    """The sentence model with a memory: cross-validation judges each text five times."""

    def __init__(self, model: SentenceModel) -> None:
        self.model, self.sha256 = model, model.sha256
        self._seen: dict[str, Any] = {}

    def tokens(self, text: str) -> int:
        return self.model.tokens(text)

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        # Batches of similar length, in an order fixed by the texts alone: the int8 model
        # quantises per batch, so a set's order (it changes from process to process with
        # the strings' hashes) made a vector, and so the trained head, differ run to run.
        todo = sorted({t for t in texts if t not in self._seen}, key=lambda t: (len(t), t))
        for i in range(0, len(todo), 32):
            batch = todo[i : i + 32]
            self._seen.update(zip(batch, self.model.embed(batch), strict=True))
        return np.array([self._seen[t] for t in texts], dtype=np.float32)


def train(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = STEPS) -> tuple[
        np.ndarray, np.ndarray]:  # fmt: skip
    """Softmax regression, mean cross-entropy plus ``l2``/2 |W|^2, on the vectors centred
    and scaled per dimension (the model's vectors share a large common direction, which
    left the uncentred fit at half the recall); the centring and scaling are folded back
    into the weights and biases (labels x dims, labels), so a PC applies them to the raw
    vector."""
    import numpy as np

    mean = x.mean(axis=0)
    spread = x.std(axis=0)
    spread = np.where(spread < 1e-6, 1.0, spread).astype(np.float32)  # a constant dimension
    z = (x - mean) / spread
    k = len(LABELS)
    w = np.zeros((k, x.shape[1]), dtype=np.float32)
    b = np.zeros(k, dtype=np.float32)
    onehot = np.eye(k, dtype=np.float32)[y]
    moments = [(np.zeros_like(w), np.zeros_like(w)), (np.zeros_like(b), np.zeros_like(b))]
    for step in range(1, steps + 1):
        logits = z @ w.T + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(z)
        grads = (g.T @ z + l2 * w, g.sum(axis=0))
        for param, grad, (m, v) in zip((w, b), grads, moments, strict=True):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= RATE * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    w = w / spread
    return w, b - w @ mean


def training_set(policy: Policy, model: CachedModel, bank: Bank,
                 texts: Sequence[Text]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    import numpy as np

    index = {x: i for i, x in enumerate(LABELS)}
    y = [index[e.category] for e in bank.exemplars]
    y += [index[t.categories[0]] if t.categories else index["innocent"] for t in texts]
    read = [readable(t.text) for t in texts]  # as the judge reads them (not the bank)
    x = np.vstack([bank.vectors, model.embed(read)]) if texts else bank.vectors
    return x.astype(np.float32), np.array(y)


def head_of(w: np.ndarray, b: np.ndarray, trained: str) -> SemanticHead:
    # Rounded to float32, as the file keeps them and the checksum is taken.
    rows = tuple(tuple(float(f"{v:.7g}") for v in row) for row in w.tolist())
    return SemanticHead(LABELS, rows, tuple(float(f"{v:.7g}") for v in b.tolist()), THRESHOLD,
                        tuple(THRESHOLDS.items()), trained)  # fmt: skip


def render(head: SemanticHead) -> str:
    out = ["# The semantic stage's trained head (rules/load_head.py reads it): a softmax over the",
           "# sentence vector, one row of weights per label. Written by rules/train_head.py, which",
           "# says what it was trained on; do not edit by hand (weights_sha256 refuses it).",
           "[head]", f"trained = {_quote(head.trained)}",
           "labels = [" + ", ".join(f'"{x}"' for x in head.labels) + "]",
           f"threshold = {head.threshold}", f"dims = {DIMS}",
           f'weights_sha256 = "{weights_sha256(head.weights, head.bias)}"', "", "[thresholds]"]
    out += [f"{c} = {t}" for c, t in head.thresholds]
    out += ["", "[weights]"]
    for label, row in zip(head.labels, head.weights, strict=True):
        out.append(f"{label} = [")
        out += ["  " + ", ".join(repr(v) for v in row[i : i + 8]) + "," for i in
                range(0, len(row), 8)]  # fmt: skip
        out.append("]")
    out += ["", "[bias]"] + [f"{x} = {v!r}" for x, v in zip(head.labels, head.bias, strict=True)]
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _corpus_commit(corpus: Path) -> str:
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%h", "--", "."], cwd=corpus,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip() or "uncommitted"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cv(policy: Policy, model: CachedModel, bank: Bank, alert: list[Text],
        innocent: list[Text], folds: int = 5) -> str:  # fmt: skip
    """Out-of-fold figures on the open corpus, judged as a PC judges (patterns, then the
    semantic stage sentence by sentence): the vote alone, and with the head's average."""
    import numpy as np

    sem = policy.semantic
    assert sem is not None
    patterns = pattern_judge(Compiled(policy, "ks2"))
    fold = np.random.default_rng(14).integers(0, folds, len(alert) + len(innocent))
    fold_a, fold_i = fold[: len(alert)], fold[len(alert) :]
    totals = {part: [0, 0, 0] for part in ("vote", "vote or average")}
    for f in range(folds):
        train_on = [t for t, g in zip([*alert, *innocent], fold, strict=True) if g != f]
        w, b = train(*training_set(policy, model, bank, train_on))
        held_a = [t for t, g in zip(alert, fold_a, strict=True) if g == f]
        held_i = [t for t, g in zip(innocent, fold_i, strict=True) if g == f]
        for part, total in totals.items():
            stage = dataclasses.replace(sem, head=None if part == "vote" else head_of(w, b, "cv"))
            judge = as_judge(SemanticJudge(dataclasses.replace(policy, semantic=stage), "ks2",
                                           model, bank))  # type: ignore[arg-type]  # fmt: skip
            alone = score(judge, held_a, ())
            both = score(combined(patterns, judge), held_a, held_i)
            total[0] += sum(alone.caught.values())
            total[1] += sum(both.caught.values())
            total[2] += both.false_texts
    n, m = len(alert), len(innocent)
    return "".join(f"{part}: semantic stage alone caught {a}/{n} ({a / n:.3f}); with the "
                   f"patterns {c}/{n} ({c / n:.3f}); false alerts {x}/{m} ({100 * x / m:.1f}%)\n"
                   for part, (a, c, x) in totals.items())  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rules.train_head", description=__doc__)
    p.add_argument("--rules", type=Path, default=DEFAULT_DIR, help="policy folder")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus folder")
    p.add_argument("--out", type=Path, default=None, help=f"default: <rules>/{HEAD}")
    p.add_argument("--cv", action="store_true", help="print 5-fold figures, write nothing")
    args = p.parse_args(argv)
    policy = load_policy(args.rules)
    sem = policy.semantic
    if sem is None:
        sys.stderr.write("train_head: this policy has no semantic stage (semantic.toml)\n")
        return 1
    model = CachedModel(SentenceModel(MODEL_DIR / sem.model, sem.model_sha256))
    bank = Bank(sem.exemplars, model)  # type: ignore[arg-type]
    alert = read_folder(args.corpus / "open" / "alert", True)
    innocent = read_folder(args.corpus / "open" / "innocent", False)
    if args.cv:
        sys.stdout.write(_cv(policy, model, bank, alert, innocent))
        return 0
    w, b = train(*training_set(policy, model, bank, alert + innocent))
    trained = (f"rules/train_head.py: softmax, L2 {L2}, {STEPS} steps of Adam from zero, on "
               f"{len(bank.exemplars)} bank exemplars and the open corpus ({len(alert)} "
               f"must-alert, {len(innocent)} innocent texts) at commit "
               f"{_corpus_commit(args.corpus)}")  # fmt: skip
    out = args.out or args.rules / HEAD
    out.write_text(render(head_of(w, b, trained)), encoding="utf-8")
    sys.stdout.write(f"wrote {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
