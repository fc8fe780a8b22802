"""Check that every list entry (term, combination, guard) catches the example it carries.

Each entry is compiled into a category of its own with threshold 1, so what is checked is
the entry itself, whatever its weight; an entry weighted to alert alone must also make its
example alert in its category with the whole policy (no guard or other entry in the way).
``safeguard-rules examples`` prints the faults; a unit test holds the shipped lists to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rules.compile import Compiled
from rules.match import match_text
from rules.schema import Category, Combo, Policy, Term


@dataclass(frozen=True)
class Fault:
    where: str  # file:line
    category: str
    fault: str


def _entries(policy: Policy, only: str | None) -> list[tuple[Category, Term | Combo]]:
    out: list[tuple[Category, Term | Combo]] = []
    for cat in policy.categories:
        if only is None or cat.name == only:
            out += [(cat, t) for t in cat.terms] + [(cat, c) for c in cat.combos]
    return out


def _alone(policy: Policy, cats: list[Category]) -> Compiled:
    names = tuple(c.name for c in cats)
    profiles = tuple(replace(p, categories=names) for p in policy.profiles)
    solo = replace(policy, categories=tuple(cats), profiles=profiles, guards=(), exemptions=())
    return Compiled(solo, policy.profiles[0].name)


def check_examples(policy: Policy, profile: str = "ks2", only: str | None = None) -> list[Fault]:
    entries = _entries(policy, only)
    faults = [Fault(e.where, c.name, "no example") for c, e in entries if not e.example.strip()]
    cats = []
    for i, (cat, entry) in enumerate(entries):
        one = replace(entry, weight=1)
        terms, combos = ((one,), ()) if isinstance(one, Term) else ((), (one,))
        cats.append(Category(f"e{i}", f"e{i}", True, 1, cat.window, terms, combos))
    alone = _alone(policy, cats)
    whole = Compiled(policy, profile)
    for i, (cat, entry) in enumerate(entries):
        if not entry.example.strip():
            continue
        if f"e{i}" not in {a.category for a in match_text(alone, entry.example)}:
            faults.append(Fault(entry.where, cat.name, f"misses its example {entry.example!r}"))
        elif entry.weight >= cat.threshold:
            found = {a.category for a in match_text(whole, entry.example) if not a.suppressed}
            if cat.name not in found:
                got = ", ".join(sorted(found)) or "nothing"
                faults.append(Fault(entry.where, cat.name, f"weighted to alert alone, but "
                                    f"its example {entry.example!r} alerts {got}"))  # fmt: skip
    guards = [g for g in policy.guards if only is None or only in g.categories]
    gcats = [Category(f"g{i}", f"g{i}", True, 1, 12, (replace(g.term, weight=1),))
             for i, g in enumerate(guards)]  # fmt: skip
    galone = _alone(policy, gcats) if gcats else None
    for i, g in enumerate(guards):
        if not g.term.example.strip():
            faults.append(Fault(g.term.where, "guard", "no example"))
        elif galone and f"g{i}" not in {a.category for a in match_text(galone, g.term.example)}:
            faults.append(Fault(g.term.where, "guard", f"misses its example {g.term.example!r}"))
    return faults
