"""Loading the semantic stage's part of a policy (optional; without it the stage is off):

    semantic.toml                     [semantic]: model file and SHA-256, min_words, k,
                                      temperature, vote, min_similarity, context (the
                                      context window's threshold floor); [votes] and
                                      [severities] per category
    semantic/head.toml                a trained classifier beside the vote (rules/load_head.py)
    semantic/exemplars.toml           [[exemplar]]: id, category (or "innocent"), text, why
    semantic/reference/alert/<category>.txt, semantic/reference/innocent/<topic>.txt
                                      reference texts, one per line as "kind: text" (the
                                      corpus format): the bulk of the bank the stage votes with
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from rules.fields import Source, Table
from rules.load_head import HEAD, head_of
from rules.load_patterns import known, unique
from rules.schema import Exemplar, PolicyError, Semantic

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_LINE = re.compile(r"^(chat|search|evasion|schoolwork)(?: \+[a-z_]+)*: (.+)$")
REFERENCE = "semantic/reference/"


def semantic_of(src: Mapping[str, Source], texts: Mapping[str, str],
                cats: set[str]) -> Semantic | None:  # fmt: skip
    """``src``: the parsed TOML files; ``texts``: every file of the policy, for the
    reference texts."""
    if "semantic.toml" not in src:
        return None
    head_src = src["semantic.toml"]
    head_src.check_top({"semantic", "votes", "severities"})
    head = head_src.table("semantic")
    head.check_keys({"enabled", "model", "model_sha256", "min_words", "k", "temperature",
                     "vote", "min_similarity", "context"})  # fmt: skip
    sha = head.get_str("model_sha256")
    if not _SHA.match(sha):
        raise head.fail("model_sha256 must be 64 lower-case hex digits", "model_sha256")
    votes = head_src.table("votes", required=False)
    known(votes, "votes", tuple(votes.data), cats)
    sev = head_src.table("severities", required=False)
    known(sev, "severities", tuple(sev.data), cats)
    exemplars = _exemplars(src.get("semantic/exemplars.toml"), cats)
    exemplars += _reference(texts, cats)
    unique([(e.id, e.where) for e in exemplars], "exemplar id")
    return Semantic(
        head.get_text("model"), sha, head.get_int("min_words", 3, lo=1, hi=20), exemplars,
        k=head.get_int("k", 7, lo=1, hi=50),
        temperature=_number(head, "temperature", 10.0, 0.0, 100.0),
        vote=_number(head, "vote", 0.8, 0.01, 1.0),
        votes=tuple((c, _number(votes, c, 0.0, 0.01, 1.0)) for c in votes.data),
        min_similarity=_number(head, "min_similarity", 0.0, -1.0, 1.0),
        context=_number(head, "context", 0.0, 0.0, 1.0),
        severities=tuple((c, sev.get_int(c, lo=1, hi=5)) for c in sev.data),
        enabled=head.get_bool("enabled", True),
        head=head_of(src[HEAD], cats) if HEAD in src else None,
    )  # fmt: skip


def _number(t: Table, key: str, default: float, lo: float, hi: float) -> float:
    value = t.data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise t.fail(f"{key} must be a number from {lo} to {hi}, got {value!r}", key)
    return float(value)


def _exemplars(src: Source | None, cats: set[str]) -> tuple[Exemplar, ...]:
    if src is None:
        raise PolicyError("semantic/exemplars.toml: missing (semantic.toml needs it)")
    src.check_top({"exemplar"})
    out = []
    for t in src.array("exemplar"):
        t.check_keys({"id", "category", "text", "why"})
        ident = t.get_str("id")
        if not _ID.match(ident):
            raise t.fail(f"id must be lower-case letters, digits, - and _; got {ident!r}", "id")
        cat = t.get_str("category")
        if cat != "innocent":
            known(t, "category", (cat,), cats)
        out.append(Exemplar(ident, cat, t.get_text("text"), t.get_text("why"), t.where))
    return tuple(out)


def _reference(texts: Mapping[str, str], cats: set[str]) -> tuple[Exemplar, ...]:
    """Reference texts: ``alert/<category>.txt`` stand for their category, ``innocent/*``
    for innocent text. Each line's id is its file and line (``grooming:12``)."""
    out = []
    for rel, text in sorted(texts.items()):
        if not rel.startswith(REFERENCE) or not rel.endswith(".txt"):
            continue
        part, _, name = rel[len(REFERENCE) :].partition("/")
        stem = name.removesuffix(".txt")
        if part == "alert" and stem in cats:
            cat, why = stem, f"a reference text for {stem} ({rel})"
        elif part == "innocent":
            cat, why = "innocent", f"a reference text for innocent school use ({rel})"
        else:
            raise PolicyError(f"{rel}:1: reference texts go in alert/<category>.txt or "
                              f"innocent/<topic>.txt")  # fmt: skip
        for no, line in enumerate(text.split("\n"), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = _LINE.match(line)
            if not m:
                raise PolicyError(f"{rel}:{no}: expected 'kind: text'")
            ident = f"{stem}:{no}" if part == "alert" else f"innocent-{stem}:{no}"
            out.append(Exemplar(ident, cat, m.group(2), why, f"{rel}:{no}"))
    return tuple(out)
