"""The semantic stage's trained head (rules/load_head.py, rules/train_head.py): the shipped
file loads and is the one trained, a text it was trained on alerts through it, and a
changed or cut file is refused with a sentence saying what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from rules.embed import MODEL_DIR, MODEL_FILE, SentenceModel
from rules.evaluate import read_folder
from rules.load import DEFAULT_DIR, load_policy
from rules.load_head import DIMS, HEAD, weights_sha256
from rules.schema import Policy, PolicyError
from rules.semantic import Bank, SemanticJudge
from rules.train_head import LABELS, CachedModel, head_of, render, train

pytestmark = pytest.mark.unit
CORPUS = Path(__file__).resolve().parents[3] / "rules" / "corpus"


@pytest.fixture(scope="module")
def model() -> SentenceModel:
    return SentenceModel(MODEL_DIR / MODEL_FILE)


@pytest.fixture(scope="module")
def bank(policy: Policy, model: SentenceModel) -> Bank:
    """The shipped bank, in the cache `safeguard-rules` keeps (embedding it takes minutes
    on a loaded machine)."""
    assert policy.semantic is not None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "safeguard-rules"
    return Bank(policy.semantic.exemplars, model, cache)


def test_the_shipped_head_loads_and_says_how_it_was_trained(policy: Policy) -> None:
    assert policy.semantic is not None and policy.semantic.head is not None
    head = policy.semantic.head
    assert head.labels == LABELS
    assert all(len(row) == DIMS for row in head.weights)
    assert "rules/train_head.py" in head.trained and "commit" in head.trained


def test_a_training_text_scores_through_the_head(policy: Policy, model: SentenceModel,
                                                 bank: Bank) -> None:  # fmt: skip
    """The head names the category of the open texts it was trained on, and where the vote
    alone does not alert, the average with the head does, naming an exemplar of it."""
    sem = policy.semantic
    assert sem is not None
    texts = [t for t in read_folder(CORPUS / "open" / "alert", True)
             if t.categories[0] == "grooming"][:60]  # fmt: skip
    judge = SemanticJudge(policy, "ks2", model, bank)
    probs = [judge.head(v) for v in model.embed([t.text for t in texts])]
    assert sum(max(p, key=p.__getitem__) == "grooming" for p in probs) >= 50
    alerts = [a for t in texts for a in judge.judge(t.text) if a.part == "average"]
    assert alerts, "no grooming text alerted through the average of vote and head"
    named = alerts[0]
    assert named.category == "grooming" and named.probability >= named.threshold
    assert named.exemplar in {e.id for e in sem.exemplars if e.category == "grooming"}
    assert named.exemplar_text and -1.0 <= named.similarity <= 1.0  # the DSL still sees why


def test_without_a_head_only_the_vote_fires(policy: Policy, model: SentenceModel,
                                            bank: Bank) -> None:  # fmt: skip
    assert policy.semantic is not None
    sem = replace(policy.semantic, head=None)
    judge = SemanticJudge(replace(policy, semantic=sem), "ks2", model, bank)
    assert judge.head(model.embed(["are you home alone"])[0]) == {}
    texts = read_folder(CORPUS / "open" / "alert", True)[:40]
    assert all(a.part == "vote" for t in texts for a in judge.judge(t.text))


def test_training_is_deterministic_and_the_file_round_trips() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, DIMS)).astype(np.float32)
    y = np.arange(60) % len(LABELS)
    w1, b1 = train(x, y, steps=20)
    w2, b2 = train(x, y, steps=20)
    assert np.array_equal(w1, w2) and np.array_equal(b1, b2)
    text = render(head_of(w1, b1, "a test"))
    assert weights_sha256(head_of(w1, b1, "a test").weights, head_of(w1, b1, "t").bias) in text


EMBED_IN_ORDER = """
import hashlib
from rules.embed import MODEL_DIR, MODEL_FILE, SentenceModel
from rules.train_head import CachedModel
texts = [f"pupil {i:02d} wrote a line" for i in range(40)] + ["a much longer sentence " * 3]
vectors = CachedModel(SentenceModel(MODEL_DIR / MODEL_FILE)).embed(texts)
print(hashlib.sha256(vectors.tobytes()).hexdigest())
"""


def test_the_training_texts_are_embedded_alike_in_every_process() -> None:
    """The int8 model quantises per batch, so a text's vector depends on its batch: batches
    made in the order of a set (which follows the strings' hashes, seeded per process) made
    the trained head differ from run to run."""
    digests = {subprocess.run([sys.executable, "-c", EMBED_IN_ORDER], capture_output=True,
                              text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}
                              ).stdout for seed in ("1", "2", "3")}  # fmt: skip
    assert len(digests) == 1, digests


def test_cross_validation_judges_through_the_cached_model(policy: Policy, model: SentenceModel,
                                                          bank: Bank) -> None:  # fmt: skip
    """``train_head --cv`` hands the judge a ``CachedModel``: it must do what the judge asks
    of the model (a sentence after another is joined by its word pieces)."""
    judge = SemanticJudge(policy, "ks2", CachedModel(model), bank)  # type: ignore[arg-type]
    judged = judge.judge("are you at home right now. is anyone else in the house with you")
    assert isinstance(judged, list)


def _with_head(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "lists"
    shutil.copytree(DEFAULT_DIR, folder)
    (folder / HEAD).write_text(text, encoding="utf-8")
    return folder


def test_a_changed_weight_is_refused(tmp_path: Path) -> None:
    text = (DEFAULT_DIR / HEAD).read_text(encoding="utf-8")
    lines = text.split("\n")
    i = next(n for n, line in enumerate(lines) if line.startswith("  ") and "," in line)
    first, _, rest = lines[i].strip().partition(",")
    lines[i] = f"  {float(first) + 0.5!r},{rest}"
    with pytest.raises(PolicyError, match=r"head.toml:\d+: the weights are not the ones trained"):
        load_policy(_with_head(tmp_path, "\n".join(lines)))


def test_a_file_cut_short_is_refused(tmp_path: Path) -> None:
    text = (DEFAULT_DIR / HEAD).read_text(encoding="utf-8")
    with pytest.raises(PolicyError, match=r"head.toml:\d+: "):
        load_policy(_with_head(tmp_path, text[: len(text) // 2]))


def test_a_row_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    text = (DEFAULT_DIR / HEAD).read_text(encoding="utf-8")
    text = text.replace("extremism = [\n", "extremism = [\n  0.1,\n", 1)
    with pytest.raises(PolicyError, match=rf"extremism must be a list of {DIMS} numbers"):
        load_policy(_with_head(tmp_path, text))
