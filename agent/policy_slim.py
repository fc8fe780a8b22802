"""A policy as a PC keeps it: without the text only a technician reads.

Every list entry, combination, word class and semantic exemplar carries its ``why``, the
``file:line`` it came from and (entries) the example it must catch. They serve the policy's
author (errors, ``safeguard-rules``, the console) and the signed bundle still holds them;
the agent never shows them, and for 3,000 entries and 11,000 exemplars they are 2.3 MB of
the service's memory. Matching and the semantic vote read none of them.
"""

from __future__ import annotations

from dataclasses import replace

from rules.schema import Category, Policy, Term


def for_a_pc(policy: Policy) -> Policy:
    sem = policy.semantic
    if sem is not None:
        sem = replace(sem, exemplars=tuple(replace(e, why="", where="") for e in sem.exemplars))
    return replace(
        policy,
        categories=tuple(_category(c) for c in policy.categories),
        guards=tuple(replace(g, term=_term(g.term)) for g in policy.guards),
        classes=tuple(replace(w, why="", where="") for w in policy.classes),
        semantic=sem,
    )


def _category(cat: Category) -> Category:
    combos = tuple(replace(c, why="", where="", example="") for c in cat.combos)
    return replace(cat, where="", terms=tuple(_term(t) for t in cat.terms), combos=combos)


def _term(term: Term) -> Term:
    return replace(term, why="", where="", example="")
