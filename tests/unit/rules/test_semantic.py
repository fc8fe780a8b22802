"""The semantic stage with the real model: our WordPiece against the model's own tokenizer,
the model file against its recorded SHA-256, sentence splitting, and the exemplar vote on a
small bank written here (exemptions, profiles switched off, the closest exemplar named)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rules.embed import MODEL_DIR, MODEL_FILE, SentenceModel, file_sha256
from rules.evaluate import read_folder
from rules.load import load_policy
from rules.schema import Exemplar, Exemption, Policy, PolicyError, Semantic
from rules.semantic import (
    CONTEXT_WORDS,
    PAIRED_WORDS,
    RECENT,
    Bank,
    SemanticJudge,
    _key,
    sentences,
)
from rules.wordpiece import WordPiece

pytestmark = pytest.mark.unit
CORPUS = Path(__file__).resolve().parents[3] / "rules" / "corpus"


@pytest.fixture(scope="module")
def model() -> SentenceModel:
    return SentenceModel(MODEL_DIR / MODEL_FILE)


def test_the_model_file_is_the_one_recorded_and_named_by_the_policy(policy: Policy) -> None:
    recorded = (MODEL_DIR / f"{MODEL_FILE}.sha256").read_text().split()[0]
    assert file_sha256(MODEL_DIR / MODEL_FILE) == recorded
    assert policy.semantic is not None and policy.semantic.model_sha256 == recorded


def test_a_model_with_another_hash_is_refused() -> None:
    with pytest.raises(PolicyError, match="SHA-256 is not the one the policy names"):
        SentenceModel(MODEL_DIR / MODEL_FILE, "0" * 64)


def test_wordpiece_equals_the_models_own_tokenizer(model: SentenceModel) -> None:
    import onnxruntime
    from tokenizers.implementations import BertWordPieceTokenizer

    meta = onnxruntime.InferenceSession(str(MODEL_DIR / MODEL_FILE)).get_modelmeta()
    vocab = meta.custom_metadata_map["vocab"]
    ours = WordPiece(vocab)
    ids = {tok: i for i, tok in enumerate(vocab.split("\n")) if tok}
    theirs = BertWordPieceTokenizer(ids, lowercase=True, strip_accents=None)
    theirs.enable_truncation(128)
    texts = [t.text for part in ("open", "heldback") for kind in ("alert", "innocent")
             for t in read_folder(CORPUS / part / kind, kind == "alert")]  # fmt: skip
    texts += ["Ça va? naïve café", "k.i.l.l  m y s e l f", "emoji 💀🔪 and 中文 text",
              "tab\there", "zero\u200bwidth", "x" * 150, "word " * 200, ""]  # fmt: skip
    assert len(texts) > 2000
    for text in texts:
        assert ours.encode(text, 128) == theirs.encode(text).ids, text


def test_vectors_are_unit_length_and_similar_sentences_are_close(model: SentenceModel) -> None:
    v = model.embed(["are you home alone right now", "is anyone else at home with you",
                     "the battle of hastings was in 1066"])  # fmt: skip
    assert v.shape == (3, 384)
    assert abs(float((v[0] ** 2).sum()) - 1) < 1e-3
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2


def test_sentences() -> None:
    text = "hi. i dont want to be here anymore! ok\nsee you tomorrow"
    assert [text[a:b].strip() for a, b in sentences(text, 3)] == [
        "hi. i dont want to be here anymore! ok", "see you tomorrow"]  # fmt: skip
    assert sentences("", 3) == []


def _bank_policy(policy: Policy) -> Policy:
    exemplars = (
        Exemplar("gr-alone", "grooming", "are you home alone right now", "checks supervision"),
        Exemplar("gr-secret", "grooming", "dont tell your mum we talk, its our secret", "secrecy"),
        Exemplar("in-dad", "innocent", "mum here, are you home yet or is dad back", "a parent"),
        Exemplar("in-history", "innocent", "the battle of hastings was in 1066", "history"),
    )
    assert policy.semantic is not None
    sem = replace(policy.semantic, exemplars=exemplars, k=1, vote=0.5)
    return replace(policy, semantic=sem)


def test_a_sentence_near_an_exemplar_alerts_and_names_it(policy: Policy,
                                                          model: SentenceModel) -> None:
    small = _bank_policy(policy)
    assert isinstance(small.semantic, Semantic)
    judge = SemanticJudge(small, "ks2", model, Bank(small.semantic.exemplars, model))
    (alert,) = judge.judge("r u on ur own at home rn?")
    assert (alert.category, alert.exemplar) == ("grooming", "gr-alone")
    assert alert.exemplar_text == "are you home alone right now" and alert.similarity > 0.5
    assert not alert.suppressed
    assert judge.judge("hastings was a battle in 1066.") == []  # nearest is innocent
    assert judge.judge("ok") == []  # under min_words


def test_exemptions_and_profiles(policy: Policy, model: SentenceModel) -> None:
    small = _bank_policy(policy)
    assert small.semantic is not None
    bank = Bank(small.semantic.exemplars, model)
    start, end = policy.exemptions[0].start, policy.exemptions[0].end
    by_exemplar = Exemption("ex1", "ks2", start, end, "a lesson", "the DSL",
                            exemplars=("gr-alone",))  # fmt: skip
    during = replace(small, exemptions=(by_exemplar,))
    judge = SemanticJudge(during, "ks2", model, bank, now=start)
    (alert,) = judge.judge("r u on ur own at home rn?")
    assert alert.suppressed and alert.exemptions == ("ex1",)
    assert judge.valid_until == end
    off = replace(small, profiles=tuple(replace(p, semantic=False) for p in small.profiles))
    assert SemanticJudge(off, "ks2", model, bank).judge("r u on ur own at home rn?") == []


def test_the_context_window_judges_a_sentence_with_the_one_before(
        policy: Policy, model: SentenceModel) -> None:  # fmt: skip
    """Two sentences, each nearest an innocent exemplar alone, alert joined (context on),
    spanning both; nothing with the context window off or for a lone sentence."""
    assert policy.semantic is not None
    exemplars = (
        Exemplar("gr-pair", "grooming", "r u home alone rn. wot r u wearing", "both"),
        Exemplar("in-home", "innocent", "are you home alone", "a parent"),
        Exemplar("in-wear", "innocent", "wot u wearing 2day", "a friend"),
    )
    sem = replace(policy.semantic, exemplars=exemplars, k=1, vote=0.5, head=None, context=0.0)
    bank = Bank(exemplars, model)
    text = "r u home alone. wot r u wearing"
    off = SemanticJudge(replace(policy, semantic=sem), "ks2", model, bank)
    assert off.judge(text) == []
    on = SemanticJudge(replace(policy, semantic=replace(sem, context=0.8)), "ks2", model,
                       bank)  # fmt: skip
    (alert,) = on.judge(text)
    assert (alert.category, alert.exemplar, alert.start, alert.end) == (
        "grooming", "gr-pair", 0, len(text))  # fmt: skip
    assert alert.threshold == 0.8  # the context floor over the vote's 0.5
    assert on.judge("wot r u wearing") == []  # no sentence before it
    # The agent judges at a pause and again at Enter: a sentence judged before is skipped
    # but is still the context of the next one.
    # (the same alert; its similarity may move in the third decimal: the int8 model
    # quantises per batch, and the batch holds one sentence fewer)
    (again,) = on.judge(text, skip={"r u home alone."})
    assert (again.category, again.exemplar, again.start, again.end) == (
        alert.category, alert.exemplar, alert.start, alert.end)  # fmt: skip
    assert on.judge(text, skip={"r u home alone.", "wot r u wearing"}) == []


def test_the_context_window_joins_a_short_sentence_to_the_words_before_it_without_a_second_run(
        policy: Policy, model: SentenceModel) -> None:  # fmt: skip
    """A sentence of at most PAIRED_WORDS words is judged again with the last CONTEXT_WORDS
    words of the one before, its vector made from the two sentences' own (no second run of
    the model); a longer sentence alone (its own context). A sentence judged before is not
    embedded again; after a restart (nothing kept) it is."""
    assert policy.semantic is not None
    bank = Bank(policy.semantic.exemplars[:3], model)
    judge = SemanticJudge(policy, "ks2", model, bank)
    seen: list[list[str]] = []
    real = model.embed
    model.embed = lambda texts: seen.append(texts) or real(texts)  # type: ignore[method-assign]
    try:
        before = " ".join(f"w{i}" for i in range(CONTEXT_WORDS + 5)) + "."
        short = " wot r u wearing"
        long = " " + " ".join(["so"] * (PAIRED_WORDS + 1))
        judge.judge(before)  # the agent judged it when it was finished
        judge.judge(before + short, skip={before})
        judge.judge(before + long, skip={before})
        SemanticJudge(policy, "ks2", model, bank).judge(before + short, skip={before})
    finally:
        del model.embed
    assert seen == [[before], [short], [long], [short, before]]


def test_a_pairs_vector_is_close_to_the_models_own_for_the_joined_text(
        policy: Policy, model: SentenceModel) -> None:  # fmt: skip
    """The pair's vector is the word-piece-weighted mean of its two sentences' vectors: what
    the model's own mean over word pieces gives where the parts do not attend to each other.
    It stays close to the model's vector of the joined text (the recall it keeps is in
    docs/detection.md)."""
    assert policy.semantic is not None
    judge = SemanticJudge(policy, "ks2", model, Bank(policy.semantic.exemplars[:3], model))
    for text in ["r u home alone. wot r u wearing", "my mum checks my phone. delete this chat",
                 "we did fractions today. it was so boring", "i hate it here. nobody would care"]:
        (a, b), (c, d) = sentences(text)
        before, own = model.embed([text[a:b], text[c:d]])
        joined = judge._joined(text[a:c], text[c:d], before, own)
        weighted = model.tokens(text[a:c]) * before + model.tokens(text[c:d]) * own
        assert np.allclose(joined, weighted / np.linalg.norm(weighted), atol=1e-6)
        whole = model.embed([text])[0]
        assert float(joined @ whole) > 0.85, text
        assert abs(float(joined @ joined) - 1.0) < 1e-5  # a unit vector


def test_the_shipped_policy_loads_its_bank() -> None:
    sem = load_policy().semantic
    assert sem is not None
    cats = {e.category for e in sem.exemplars}
    assert "innocent" in cats and len(cats) == 12
    assert sum(e.category == "innocent" for e in sem.exemplars) > 1000
    assert all(e.why for e in sem.exemplars)


def test_a_judge_keeps_the_vectors_of_its_last_sentences_only(
        policy: Policy, model: SentenceModel) -> None:  # fmt: skip
    """What a judge keeps for the next sentence's context is bounded, oldest out first:
    a pasted essay does not grow the agent."""
    assert policy.semantic is not None
    judge = SemanticJudge(policy, "ks2", model, Bank(policy.semantic.exemplars[:3], model))
    text = " ".join(f"we counted {n} red buses today." for n in range(RECENT + 5))
    judge.judge(text)
    assert len(judge._recent) == RECENT
    judge.judge("one more sentence about buses.")
    assert len(judge._recent) == RECENT and list(judge._recent)[-1] == _key(
        "one more sentence about buses.")  # fmt: skip


def test_an_evasion_is_judged_as_the_words_it_hides(policy: Policy,
                                                    model: SentenceModel) -> None:
    small = _bank_policy(policy)
    assert small.semantic is not None
    judge = SemanticJudge(small, "ks2", model, Bank(small.semantic.exemplars, model))
    (plain,) = judge.judge("dont tell ur mum we talk its our secret")
    (hidden,) = judge.judge("d0nt t3ll ur mum we t4lk its 0ur s.e.c.r.e.t")
    assert (hidden.category, hidden.exemplar) == ("grooming", "gr-secret")
    assert hidden.similarity == pytest.approx(plain.similarity, abs=0.01)
    assert hidden.context.endswith("we t4lk its 0ur s.e.c.r.e.t")  # as typed
