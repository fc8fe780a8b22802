"""Loading the pattern parts of a policy: ``[[term]]`` entries (a literal ``phrase`` or a
``pattern``), word classes (``classes.toml``, ``classes/*.toml``) and guards
(``guards.toml``, ``guards/*.toml``). Faults name file and line, as ``rules.load`` does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from rules.fields import Source, Table
from rules.normalise import fast_squeeze
from rules.pattern import Expanded, class_name_ok, expand
from rules.schema import BOUNDARIES, Boundary, Guard, PolicyError, Term, WordClass


def phrase_text(t: Table, key: str, phrase: str) -> str:
    """``phrase`` normalised as typed text is; a fault if nothing of it can match. (The
    bulk path's normaliser: the same string as the keystroke one's, which property tests
    hold it to, at C speed: the shipped lists' 170,000 expanded phrases took 3 s of a
    policy's 5 s load one character at a time.)"""
    folded = fast_squeeze(phrase)[0].strip()
    if not folded:
        raise t.fail(f"{key} {phrase!r} has no letters or digits to match", key)
    return folded


def unique(items: list[tuple[str, str]], what: str) -> None:
    seen: dict[str, str] = {}
    for key, where in items:
        if key in seen:
            raise PolicyError(f"{where}: duplicate {what} {key!r} (first at {seen[key]})")
        seen[key] = where


def known(t: Table, key: str, values: tuple[str, ...], names: set[str]) -> tuple[str, ...]:
    for v in values:
        if v not in names:
            raise t.fail(f"{key}: unknown category {v!r}", key)
    return values


def expand_in(t: Table, key: str, text: str, classes: Mapping[str, tuple[str, ...]],
              split: bool = False) -> Expanded:  # fmt: skip
    try:
        return expand(text, classes, split)
    except PolicyError as exc:
        raise t.fail(str(exc), key) from None


def term_of(t: Table, classes: Mapping[str, tuple[str, ...]], keys: set[str]) -> Term:
    """A ``[[term]]`` (or guard): a literal ``phrase`` or a ``pattern``, with its weight."""
    t.check_keys(keys | {"phrase", "pattern"})
    if ("phrase" in t.data) == ("pattern" in t.data):
        raise t.fail("give exactly one of phrase (literal) or pattern",
                     "pattern" if "pattern" in t.data else None)  # fmt: skip
    weight = t.get_int("weight", lo=-1000, hi=1000)
    why, example = t.get_text("why"), t.get_str("example", "")
    if "phrase" in t.data:
        boundary = cast(Boundary, t.get_str("boundary", "word", choices=BOUNDARIES))
        return Term(t.get_text("phrase"), weight, why, boundary, t.where, example)
    source = t.get_text("pattern")
    # A large pattern is stored in adjacent pieces unless its boundary is set by hand.
    split = "boundary" not in t.data
    found = expand_in(t, "pattern", source, classes, split)  # checked now, expanded again
    for phrases in found.segments:                           # when compiled (not kept)
        for p in phrases:
            phrase_text(t, "pattern", p)
    boundary = cast(Boundary, t.get_str("boundary", found.boundary, choices=BOUNDARIES))
    return Term(source, weight, why, boundary, t.where, example, classes, split)


def classes_of(sources: list[Source]) -> tuple[WordClass, ...]:
    """``classes.toml`` and ``classes/*.toml``: ``[[class]]`` with ``name``, ``words`` and
    ``why``; every class is expanded once here so a fault names its own line."""
    out, tables = [], []
    for src in sources:
        src.check_top({"class"})
        for t in src.array("class"):
            t.check_keys({"name", "words", "why"})
            name = t.get_str("name")
            if not class_name_ok(name):
                raise t.fail(f"name must be lower-case letters, digits and _; got {name!r}",
                             "name")  # fmt: skip
            out.append(WordClass(name, t.get_strs("words", required=True), t.get_text("why"),
                                 t.where))  # fmt: skip
            tables.append(t)
    unique([(c.name, c.where) for c in out], "class")
    words = {c.name: c.words for c in out}
    for c, t in zip(out, tables, strict=True):
        expand_in(t, "words", "{" + c.name + "}", words)
    return tuple(out)


def guards_of(src: Source, cats: set[str],
            classes: Mapping[str, tuple[str, ...]]) -> tuple[Guard, ...]:  # fmt: skip
    src.check_top({"guard"})
    out = []
    for t in src.array("guard"):
        term = term_of(t, classes, {"weight", "why", "example", "categories", "within"})
        if term.weight >= 0:
            raise t.fail("a guard's weight must be negative (it lowers alerts)", "weight")
        if "..." in term.phrase:
            raise t.fail("a guard cannot have a gap (...)", "pattern")
        applies = t.get_strs("categories", required=True)
        if applies != ("*",):
            known(t, "categories", applies, cats)
        out.append(Guard(term, tuple(sorted(cats)) if applies == ("*",) else applies,
                         t.get_int("within", 10, lo=1, hi=30)))  # fmt: skip
    return tuple(out)


