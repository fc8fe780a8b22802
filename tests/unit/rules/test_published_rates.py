"""The shipped policy keeps its published figures (docs/detection.md) on rules/corpus.

The counts behind them are recorded in rules/corpus/recorded.toml: per part and category,
how many must-alert texts were caught and how many innocent texts alerted, with the patterns
alone and with both stages. A change to the lists or the semantic stage that catches fewer or
raises more fails here. The patterns are exact (the same on every machine); the semantic
stage's int8 kernels differ slightly between CPUs (AVX2, AVX-512 VNNI), so a vote sitting on
its threshold may flip: its counts may move by SLACK texts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from rules.compile import Compiled
from rules.embed import MODEL_DIR, SentenceModel
from rules.evaluate import DEFAULT_CORPUS, Report, combined, evaluate, pattern_judge, recorded
from rules.schema import CATEGORIES
from rules.semantic import Bank, SemanticJudge

pytestmark = pytest.mark.unit
RECORD = tomllib.loads((DEFAULT_CORPUS / "recorded.toml").read_text(encoding="utf-8"))
SLACK = 2  # texts, per category and part, for the semantic stage only


def _hold(report: Report, stage: str, slack: int) -> None:
    now, then = recorded(report), RECORD[stage]
    worse = []
    for part, row in then.items():
        have = now[part]
        for cat in CATEGORIES:
            key = f"caught_{cat}"
            if key in row and have[key] < row[key] - slack:
                worse.append(f"{part} {cat}: caught {have[key]}, recorded {row[key]}")
        if have["false_texts"] > row["false_texts"] + slack:
            worse.append(f"{part}: {have['false_texts']} false alerts, recorded "
                         f"{row['false_texts']}")  # fmt: skip
    assert not worse, f"{stage}: worse than recorded:\n" + "\n".join(worse)


def test_the_patterns_alone_keep_their_figures(ks2: Compiled) -> None:
    _hold(evaluate(pattern_judge(ks2)), "patterns", 0)


@pytest.mark.timeout(1200)  # every corpus text through the model: about 5 minutes when loaded
def test_both_stages_keep_their_figures(ks2: Compiled) -> None:
    from rules.evaluate import semantic_judge

    sem = ks2.policy.semantic
    assert sem is not None and sem.enabled
    model = SentenceModel(MODEL_DIR / sem.model, sem.model_sha256)
    judge = SemanticJudge(ks2.policy, "ks2", model, Bank(sem.exemplars, model))
    _hold(evaluate(combined(pattern_judge(ks2), semantic_judge(judge))), "both", SLACK)


def test_the_record_covers_every_part_and_category() -> None:
    for stage in ("patterns", "both"):
        assert set(RECORD[stage]) == {"open", "heldback", "typing"}
        for part in ("open", "heldback"):
            assert all(f"caught_{c}" in RECORD[stage][part] for c in CATEGORIES)
    assert Path(DEFAULT_CORPUS / "heldback").is_dir()
