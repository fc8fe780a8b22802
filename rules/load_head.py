"""Loading the semantic stage's trained head, ``semantic/head.toml`` (optional):

    [head]          trained (how, and from which corpus commit), labels (the categories it
                    knows and "innocent"), threshold, dims (384), weights_sha256
    [thresholds]    per category, overriding threshold
    [weights]       <label> = [dims numbers]
    [bias]          <label> = number

``weights_sha256`` is the SHA-256 of the weights row by row and then the biases, each as a
little-endian float32: a number changed by hand or a file cut short is refused, not run.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable

from rules.fields import Source, Table
from rules.load_patterns import known
from rules.schema import SemanticHead

HEAD = "semantic/head.toml"
DIMS = 384  # the sentence model's vector


def weights_sha256(weights: Iterable[Iterable[float]], bias: Iterable[float]) -> str:
    h = hashlib.sha256()
    for row in (*weights, bias):
        values = tuple(row)
        h.update(struct.pack(f"<{len(values)}f", *values))
    return h.hexdigest()


def head_of(src: Source, cats: set[str]) -> SemanticHead:
    src.check_top({"head", "thresholds", "weights", "bias"})
    top = src.table("head")
    top.check_keys({"trained", "labels", "threshold", "dims", "weights_sha256"})
    labels = top.get_strs("labels", required=True)
    if "innocent" not in labels or len(set(labels)) != len(labels):
        raise top.fail("labels must name each category once and \"innocent\"", "labels")
    known(top, "labels", tuple(x for x in labels if x != "innocent"), cats)
    if top.get_int("dims", lo=1) != DIMS:
        raise top.fail(f"dims must be {DIMS}, the sentence model's vector", "dims")
    weights, bias = src.table("weights"), src.table("bias")
    for t in (weights, bias):
        t.check_keys(set(labels))
    rows = tuple(_row(weights, label) for label in labels)
    biases = tuple(_number(bias, label) for label in labels)
    thresholds = src.table("thresholds", required=False)
    known(thresholds, "thresholds", tuple(thresholds.data), cats)
    digest = weights_sha256(rows, biases)
    if digest != top.get_str("weights_sha256"):
        raise top.fail("the weights are not the ones trained (their SHA-256 differs from "
                       "weights_sha256): the file was changed or cut short; write it again "
                       "with rules/train_head.py", "weights_sha256")  # fmt: skip
    return SemanticHead(
        labels, rows, biases, _prob(top, "threshold"),
        tuple((c, _prob(thresholds, c)) for c in thresholds.data), top.get_text("trained"),
    )  # fmt: skip


def _number(t: Table, key: str) -> float:
    value = t.data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise t.fail(f"{key} must be a finite number, got {value!r}", key)
    return float(value)


def _prob(t: Table, key: str) -> float:
    value = _number(t, key)
    if not 0.0 < value <= 1.0:
        raise t.fail(f"{key} must be a probability above 0 and at most 1, got {value}", key)
    return value


def _row(t: Table, label: str) -> tuple[float, ...]:
    value = t.data.get(label)
    if not isinstance(value, list) or len(value) != DIMS:
        raise t.fail(f"{label} must be a list of {DIMS} numbers", label)
    out = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise t.fail(f"{label} must hold only finite numbers, found {x!r}", label)
        out.append(float(x))
    return tuple(out)

