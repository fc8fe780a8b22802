"""The semantic stage: each finished sentence as a vector, compared with a bank of
exemplars, and named by the closest one.

    text ─▶ sentences ─▶ readable (evasions undone) ─▶ SentenceModel.embed
            ─▶ the k nearest exemplars (cosine) vote,
            each weighted exp(temperature * similarity) ─▶ the category with the most
            weight, if its share reaches its vote threshold and it is not "innocent"
            ─▶ SemanticAlert(category, share, closest exemplar, similarity, context)
                        └▶ or else, where the policy ships a trained head (a softmax over
                           the same vector), each label's mean of its vote share and the
                           head's probability: the highest, if a category and at the head's
                           threshold ─▶ SemanticAlert(part="average", its closest exemplar)

Patterns catch the wordings someone listed; this catches the ones nobody did. The bank holds
exemplars of every category and, as many again, of innocent school text (lessons about each
risk, games, idioms, ordinary schoolwork), which is what keeps a lesson about drugs from
looking like a pupil buying them. It runs where matching runs (the agent service, one
model for all sessions), on sentences the keyboard detector has finished (Enter, a focus
change, a pause) and on search queries. Nothing leaves it but an alert's capped context.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Container, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rules.embed import SentenceModel
from rules.readable import readable
from rules.schema import Exemplar, Policy, PolicyError

if TYPE_CHECKING:
    import numpy as np

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_WORD = re.compile(r"\S+")
# The context window (``SemanticJudge.judge``): a sentence of at most PAIRED_WORDS words is
# judged again after the last CONTEXT_WORDS words of the one before it.
PAIRED_WORDS = 10
CONTEXT_WORDS = 10
RECENT = 64  # sentence vectors a judge keeps, for the context of the sentence after them


@dataclass(frozen=True)
class SemanticAlert:
    category: str
    probability: float  # the category's share of the vote (or, part "average", its mean)
    threshold: float
    exemplar: str  # the closest exemplar's id ...
    exemplar_text: str  # ... its sentence, so the DSL sees why
    similarity: float  # cosine between the sentence and that exemplar
    start: int  # raw offsets of the sentence in the text
    end: int
    context: str
    suppressed: bool = False
    exemptions: tuple[str, ...] = ()
    part: str = "vote"  # what fired: "vote", or "average" (of the vote and the trained head)

    @property
    def score(self) -> int:
        return round(100 * self.probability)

    def to_json(self) -> dict[str, Any]:
        return {"stage": "semantic", **asdict(self)}


def sentences(text: str, min_words: int = 1) -> list[tuple[int, int]]:
    """Spans of the sentences of ``text``: ends at ``.``, ``!``, ``?`` or a new line; a
    piece shorter than ``min_words`` words joins the sentence before it (so "ok." after a
    sentence does not stand alone, and "no. never." stays one thought)."""
    spans: list[tuple[int, int]] = []
    for m in _SENTENCE.finditer(text):
        a, b = m.span()
        if not text[a:b].strip():
            continue
        if spans and len(text[a:b].split()) < min_words:
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
    if len(spans) > 1 and len(text[spans[0][0] : spans[0][1]].split()) < min_words:
        spans[0:2] = [(spans[0][0], spans[1][1])]
    return spans


def _last_words(text: str, a: int, b: int, n: int) -> int:
    """Where the last ``n`` words of ``text[a:b]`` begin."""
    starts = [m.start() for m in _WORD.finditer(text, a, b)]
    return starts[-n] if len(starts) > n else a


def _key(sentence: str) -> bytes:
    return hashlib.blake2b(sentence.strip().encode(), digest_size=16).digest()


class Cancelled(Exception):
    """Embedding the bank was stopped (the agent is stopping)."""


class Bank:
    """The exemplars' vectors, made once per policy and shared by every profile's judge;
    embedded in small batches so the model's working memory stays small. Kept as int8 with
    a scale per row (4.3 MB for 11,136 against 17 MB as float32; a similarity moves by at
    most about 0.002) and turned back into float32 a block of rows at a time when a
    sentence is compared (as fast as the float32 product: float16, converted per sentence,
    took 10 times longer)."""

    BATCH = 16
    BLOCK = 512  # rows made float32 at a time: a 0.8 MB buffer, not a copy of the bank

    def __init__(self, exemplars: Sequence[Exemplar], model: SentenceModel,
                 cache: Path | None = None,
                 cancelled: Callable[[], bool] = lambda: False) -> None:  # fmt: skip
        """``cache``: a folder where the vectors are kept between runs, named by a hash of
        the model and the texts (embedding 9,000 sentences takes seconds of CPU).
        ``cancelled``: asked between batches; True stops with ``Cancelled``."""
        import numpy as np

        self._np = np
        self.exemplars = exemplars
        self.labels = tuple(e.category for e in exemplars)
        key = hashlib.sha256(model.sha256.encode() + b"\0" + "\0".join(
            e.text for e in exemplars).encode()).hexdigest()  # fmt: skip
        path = cache / f"bank-{key[:32]}.npy" if cache is not None else None
        if path is not None and path.exists():
            with contextlib.suppress(OSError, ValueError):
                kept = np.load(path, allow_pickle=False)
                if kept.shape == (len(exemplars), 384) and kept.dtype == np.float32:
                    self._keep(kept)
                    return
        vectors = np.zeros((len(exemplars), 384), dtype=np.float32)
        # Batches of similar length: a batch is padded to its longest sentence.
        order = sorted(range(len(exemplars)), key=lambda i: len(exemplars[i].text))
        for i in range(0, len(order), self.BATCH):
            if cancelled():
                raise Cancelled("the bank was being embedded when the agent stopped")
            rows = order[i : i + self.BATCH]
            vectors[rows] = model.embed([exemplars[r].text for r in rows])
        if path is not None:
            with contextlib.suppress(OSError):
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                part = path.with_suffix(".part.npy")
                np.save(part, vectors, allow_pickle=False)
                part.replace(path)
                for old in path.parent.glob("bank-*.npy"):  # an earlier policy's: not needed
                    if old != path:
                        old.unlink()
        self._keep(vectors)

    def _keep(self, vectors: np.ndarray) -> None:
        np = self._np
        top = np.abs(vectors).max(axis=1)
        self._scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
        self._rows = np.rint(vectors / self._scale[:, None]).astype(np.int8)

    def nbytes(self) -> int:
        return int(self._rows.nbytes + self._scale.nbytes)

    @property
    def vectors(self) -> np.ndarray:
        """The vectors as float32 (a full copy, made on each call)."""
        out: np.ndarray = self._rows.astype(self._np.float32) * self._scale[:, None]
        return out

    def similarities(self, vec: np.ndarray) -> np.ndarray:
        """Cosine similarity of a unit vector to every exemplar; of each of several (rows
        of a matrix: each block of the bank is made float32 once for all of them)."""
        np, rows = self._np, self._rows
        vecs = np.atleast_2d(vec).astype(np.float32, copy=False)
        out = np.empty((len(rows), len(vecs)), dtype=np.float32)
        block = np.empty((min(self.BLOCK, len(rows)), rows.shape[1]), dtype=np.float32)
        for i in range(0, len(rows), self.BLOCK):
            part = rows[i : i + self.BLOCK]
            some = block[: len(part)]
            some[...] = part
            np.matmul(some, vecs.T, out=out[i : i + len(part)])
        out *= self._scale[:, None]
        return out[:, 0] if vec.ndim == 1 else out.T  # type: ignore[no-any-return]


class SemanticJudge:
    """The stage for one profile at one time (exemptions at ``now``, as ``Compiled``)."""

    def __init__(self, policy: Policy, profile: str, model: SentenceModel, bank: Bank,
                 now: datetime | None = None) -> None:  # fmt: skip
        import numpy as np

        sem = policy.semantic
        if sem is None:
            raise PolicyError("this policy has no semantic stage (semantic.toml)")
        prof = policy.profile(profile)
        now = now or datetime.now(UTC)
        self.policy, self.semantic, self.model, self.bank = policy, sem, model, bank
        self._np = np
        enabled = {c.name for c in policy.categories if c.enabled}
        self.categories = frozenset(c for c in prof.categories if c in enabled)
        self.on = sem.enabled and prof.semantic and bool(self.categories) and bool(
            len(bank.exemplars))  # fmt: skip
        active = [e for e in policy.exemptions if e.group == prof.name and e.active(now)]
        self._exempt_cats = {c: e.id for e in active for c in e.categories}
        self._exempt_exemplars = {x: e.id for e in active for x in e.exemplars}
        edges = [t for e in policy.exemptions if e.group == prof.name
                 for t in (e.start, e.end) if t > now]  # fmt: skip
        self.valid_until: datetime | None = min(edges) if edges else None
        head = sem.head
        self._head = None if head is None else (
            head.labels, np.array(head.weights, dtype=np.float32),
            np.array(head.bias, dtype=np.float32),
            [head.threshold_for(x) for x in head.labels])  # fmt: skip
        # Where each label's exemplars sit in the bank: a head alert names its closest one.
        labels = np.array(bank.labels) if head is not None else np.array([])
        self._rows_of: dict[str, np.ndarray] = {
            x: np.flatnonzero(labels == x) for x in set(bank.labels)}  # fmt: skip
        # The vectors of the last sentences judged, by a hash of their text (not the text):
        # the sentence typed next is judged with the one before it as its context.
        self._recent: dict[bytes, np.ndarray] = {}

    def judge(self, text: str, skip: Container[str] = ()) -> list[SemanticAlert]:
        """Alerts for the sentences of ``text`` (at most one per sentence). ``skip``: the
        sentences (stripped) judged before, as the agent keeps them while a text is typed;
        they are not judged again but are still the context of the sentence after them."""
        if not self.on:
            return []
        spans = [(a, b) for a, b in sentences(text, self.semantic.min_words)
                 if len(text[a:b].split()) >= self.semantic.min_words]  # fmt: skip
        todo = [i for i, (a, b) in enumerate(spans) if text[a:b].strip() not in skip]
        if not todo:
            return []
        # The context window: a sentence after another is also judged joined with the one
        # before it ("are u home alone. wot u wearing": each weak alone), at thresholds of
        # at least ``context``, where the sentence alone did not alert. Only a short one,
        # with the last words before it: a long sentence carries its own context.
        floor = self.semantic.context
        pairs = {i: (_last_words(text, *spans[i - 1], CONTEXT_WORDS), spans[i][1])
                 for i in todo if i and floor
                 and len(text[slice(*spans[i])].split()) <= PAIRED_WORDS}  # fmt: skip
        # A sentence judged before is the context of the one after it: its vector is kept
        # (else, after a restart or many sentences since, embedded again).
        kept = {i - 1: self._recent.get(_key(text[slice(*spans[i - 1])])) for i in pairs
                if i - 1 not in todo}  # fmt: skip
        embed = [*todo, *(i for i, vec in kept.items() if vec is None)]
        vec_of = {i: v for i, v in kept.items() if v is not None}
        read = {i: readable(text[slice(*spans[i])]) for i in embed}  # evasions undone
        vec_of.update(zip(embed, self.model.embed(list(read.values())), strict=True))
        paired = {i: self._joined(readable(text[pairs[i][0] : spans[i][0]]), read[i],
                                  vec_of[i - 1], vec_of[i]) for i in pairs}  # fmt: skip
        self._recent.update((_key(text[slice(*spans[i])]), vec_of[i]) for i in embed)
        while len(self._recent) > RECENT:  # the oldest first (a dict keeps their order)
            del self._recent[next(iter(self._recent))]
        out = []
        for i, vec in ((i, vec_of[i]) for i in todo):
            if i in paired:  # (almost every sentence does not alert alone: both at once)
                sims, pair_sims = self.bank.similarities(self._np.stack([vec, paired[i]]))
                alert = self._one(text, *spans[i], vec, sims=sims)
                if alert is None:
                    alert = self._one(text, *pairs[i], paired[i], floor, pair_sims)
            else:
                alert = self._one(text, *spans[i], vec)
            if alert is not None:
                out.append(alert)
        return out

    def _joined(self, context_read: str, own_read: str, before: np.ndarray,
                vec: np.ndarray) -> np.ndarray:
        """The vector of the pair (the last words of the sentence before, then this one),
        without running the model again: the two sentences' vectors (the whole sentence
        before, as it was judged), averaged with weights of their word pieces in the pair.
        The model's own vector is a mean over word pieces, normalised, so this approximates
        the joined text's where its two parts do not attend to each other (cosine above 0.85
        with the model's on short pairs, tests/unit/rules/test_semantic.py). Embedding the
        pair cost a second run of the model, padded to the longer; judged both ways on the
        whole corpus and ordinary typing, this caught the same (4,412 open, 435 held back)
        and raised 55 and 2 false alerts (open, typing) where the second run raised 56 and 4
        (stop 30, `safeguard-rules evaluate --quiet`)."""
        own = self.model.tokens(own_read)
        context = self.model.tokens(context_read)
        joined = context * before + own * vec
        norm = float(self._np.linalg.norm(joined))
        return joined / norm if norm else vec

    def vote(self, vec: np.ndarray) -> tuple[str, float, int, float]:
        """(winning label, its share of the vote, the closest exemplar of that label,
        the similarity to it)."""
        _, label, share, best, similarity = self._vote(vec)
        return label, share, best, similarity

    def _vote(self, vec: np.ndarray, sims: np.ndarray | None = None
              ) -> tuple[dict[str, float], str, float, int, float]:  # fmt: skip
        """``vote`` and every label's share (the trained head averages with them);
        ``sims``: the vector's similarities to the bank, if made already."""
        np = self._np
        bank, sem = self.bank, self.semantic
        if sims is None:
            sims = bank.similarities(vec)
        k = min(sem.k, len(sims))
        near = np.argpartition(-sims, k - 1)[:k]
        weights = np.exp(sem.temperature * sims[near])
        tally: dict[str, float] = {}
        for i, wt in zip(near, weights, strict=True):
            label = bank.labels[i]
            tally[label] = tally.get(label, 0.0) + float(wt)
        total = sum(tally.values())
        shares = {x: v / total for x, v in tally.items()}
        label = max(shares, key=shares.__getitem__)
        mine = [i for i in near if bank.labels[i] == label]
        best = max(mine, key=lambda i: sims[i])
        return shares, label, shares[label], int(best), float(sims[best])

    def head(self, vec: np.ndarray) -> dict[str, float]:
        """The trained head's probability for each label (empty when the policy has no
        head): one matrix-vector product and a softmax."""
        if self._head is None:
            return {}
        np = self._np
        labels, weights, bias, _ = self._head
        logits = weights @ vec + bias
        probs = np.exp(logits - logits.max())
        return dict(zip(labels, (probs / probs.sum()).tolist(), strict=True))

    def _one(self, text: str, a: int, b: int, vec: np.ndarray, floor: float = 0.0,
             sims: np.ndarray | None = None) -> SemanticAlert | None:  # fmt: skip
        """The alert for the text at ``a:b`` (one sentence, or two: the context window),
        if any; ``floor``: no threshold below this."""
        shares, label, share, best, similarity = self._vote(vec, sims)
        threshold = max(self.semantic.vote_for(label), floor)
        part = "vote"
        if not (label in self.categories and share >= threshold
                and similarity >= self.semantic.min_similarity):  # fmt: skip
            found = self._average(vec, shares, floor)
            if found is None:
                return None
            label, share, threshold, best, similarity = found
            part = "average"
        exemplar = self.bank.exemplars[best]
        found_ex = (self._exempt_cats.get(label), self._exempt_exemplars.get(exemplar.id))
        exempt = tuple(sorted({x for x in found_ex if x}))
        pol = self.policy
        words = text[a:b].split()[-pol.context_words :]
        context = " ".join(words)[-pol.context_chars :]
        return SemanticAlert(label, round(share, 3), threshold, exemplar.id, exemplar.text,
                             round(similarity, 3), a, b, context, bool(exempt), exempt,
                             part)  # fmt: skip

    def _average(self, vec: np.ndarray, shares: dict[str, float], floor: float = 0.0
                 ) -> tuple[str, float, float, int, float] | None:  # fmt: skip
        """Where the vote did not alert: the mean of each label's vote share and the head's
        probability; the highest alerts if it is a category and reaches the head's threshold.
        (label, mean, threshold, and the bank's closest exemplar of the label with its
        similarity: the DSL still sees why.)"""
        probs = self.head(vec)
        if not probs or self._head is None:
            return None
        mean = {x: (shares.get(x, 0.0) + p) / 2 for x, p in probs.items()}
        label = max(mean, key=mean.__getitem__)
        threshold = max(self._head[3][self._head[0].index(label)], floor)
        mine = self._rows_of.get(label)
        if label not in self.categories or mean[label] < threshold or mine is None or not len(
                mine):  # fmt: skip
            return None
        sims = self.bank.similarities(vec)
        best = int(mine[sims[mine].argmax()])
        return label, mean[label], threshold, best, float(sims[best])

