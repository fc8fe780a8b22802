"""The semantic bank in memory (rules/semantic.py ``Bank``): one byte a number with a scale
per row, and similarities within 0.003 of the float32 ones (the recorded corpus counts are
the same either way: rules/corpus/recorded.toml, tests/unit/rules/test_published_rates.py)."""

from __future__ import annotations

import numpy as np
import pytest

from rules.embed import MODEL_DIR, MODEL_FILE, SentenceModel
from rules.schema import Exemplar

pytestmark = pytest.mark.unit
TEXTS = ["send me a pic of you, nobody has to know", "we read about the water cycle today",
         "i dont want to be here anymore", "the PSHE lesson about betting sites",
         "im gonna bring a blade to school", "can you help me with my fractions homework",
         "are your parents home right now", "the knight slew the dragon in the story"]  # fmt: skip


def test_the_bank_holds_a_byte_a_number_and_scores_as_float32_does() -> None:
    from rules.semantic import Bank

    model = SentenceModel(MODEL_DIR / MODEL_FILE)
    exemplars = tuple(Exemplar(f"x{i}", "innocent", t, "test") for i, t in enumerate(TEXTS))
    bank = Bank(exemplars, model)
    assert bank.nbytes() <= len(TEXTS) * (384 + 4)
    exact = model.embed(list(TEXTS))
    for query in model.embed(["nobody needs to know about the photos", "my maths homework"]):
        got = bank.similarities(query)
        assert got.dtype == np.float32
        assert np.abs(got - exact @ query).max() < 0.003
    # Several vectors at once (the context window: a sentence and its pair): the same rows.
    queries = model.embed(["nobody needs to know about the photos", "my maths homework"])
    both = bank.similarities(queries)
    assert both.shape == (2, len(TEXTS))
    for row, query in zip(both, queries, strict=True):
        assert np.abs(row - bank.similarities(query)).max() < 1e-5
