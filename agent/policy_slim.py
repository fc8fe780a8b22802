"""A policy as a PC keeps it: without the text only a technician reads.

Every list entry, combination, word class and semantic exemplar carries its ``why``, the
``file:line`` it came from and (entries) the example it must catch. They serve the policy's
author (errors, ``safeguard-rules``, the console) and the signed bundle still holds them;
the agent never shows them, and for 3,000 entries and 11,000 exemplars they are 2.3 MB of
the service's memory. Matching and the semantic vote read none of them.

The exemplars are also packed: 11,000 small objects became a few large ones. Small objects
share the interpreter's 1 MB arenas with whatever else is made while they load, so a policy
replaced by a newer one (a PC's first start: the shipped policy, then the collector's) left
arenas that could not be handed back; large buffers are freed whole.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import overload

from rules.schema import Category, Exemplar, Policy, Term


class PackedExemplars(Sequence[Exemplar]):
    """The semantic bank's exemplars as two byte strings with their offsets, and a label
    byte each (no ``why``, no ``where``); an
    ``Exemplar`` is made when one is asked for (an alert names it)."""

    def __init__(self, exemplars: Iterable[Exemplar]) -> None:
        ids, texts, cats = [], [], []
        for e in exemplars:
            ids.append(e.id)
            texts.append(e.text)
            cats.append(e.category)
        self._names = tuple(sorted(set(cats)))
        index = {name: i for i, name in enumerate(self._names)}
        self._cats = bytes(index[c] for c in cats)  # fewer than 256 labels: 11 and "innocent"
        self._ids, self._id_at = _joined(ids)
        self._texts, self._text_at = _joined(texts)

    def __len__(self) -> int:
        return len(self._cats)

    @overload
    def __getitem__(self, i: int) -> Exemplar: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Exemplar]: ...
    def __getitem__(self, i: int | slice) -> Exemplar | Sequence[Exemplar]:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("exemplar index out of range")
        text = self._texts[self._text_at[i] : self._text_at[i + 1]].decode()
        return Exemplar(self._ids[self._id_at[i] : self._id_at[i + 1]].decode(),
                        self._names[self._cats[i]], text, why="")  # fmt: skip

    def __iter__(self) -> Iterator[Exemplar]:
        return (self[i] for i in range(len(self)))

    def _key(self) -> tuple[object, ...]:
        return (self._names, self._cats, self._ids, self._texts, self._id_at.tobytes(),
                self._text_at.tobytes())  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackedExemplars):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _joined(parts: list[str]) -> tuple[bytes, array[int]]:
    """The parts as one UTF-8 string (a str would take 4 bytes a character for all of them
    if one held an emoji) and where each starts, with the end as a last offset."""
    encoded = [p.encode() for p in parts]
    at = array("L", [0])
    for p in encoded:
        at.append(at[-1] + len(p))
    return b"".join(encoded), at


def for_a_pc(policy: Policy) -> Policy:
    sem = policy.semantic
    if sem is not None:
        sem = replace(sem, exemplars=PackedExemplars(sem.exemplars))
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
