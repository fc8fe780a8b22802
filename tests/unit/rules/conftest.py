"""Shared fixtures for the rules tests: the shipped policy, compiled once per session."""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rules.compile import Compiled
from rules.load import DEFAULT_DIR, load_policy
from rules.match import Alert, Stream
from rules.schema import Boundary, Category, Combo, Policy, Term

# Inside the shipped history exemption (2025-01-06 .. 2025-02-14).
DURING_EXEMPTION = datetime(2025, 1, 20, 10, 0, tzinfo=UTC)
AFTER_EXEMPTION = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="session")
def ks2(policy: Policy) -> Compiled:
    return Compiled(policy, "ks2", AFTER_EXEMPTION)


@pytest.fixture(scope="session")
def ks2_exempt(policy: Policy) -> Compiled:
    return Compiled(policy, "ks2", DURING_EXEMPTION)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped policy folder."""
    dest = tmp_path / "lists"
    shutil.copytree(DEFAULT_DIR, dest)
    return dest


def generated_policy(base: Policy, n: int, seed: int = 4) -> Policy:
    """``base`` plus a category of ``n`` generated terms (2-4 consonant-vowel syllables,
    a fifth with a second word), as in ``bench/bench_matcher.py``; here also with some
    doubled letters, every boundary mode and a few negative weights, and combinations."""
    rng = random.Random(seed)
    syll = [a + b for a in "bcdfghjklmnprstvwz" for b in "aeiou"]
    seen: set[str] = set()
    terms = []
    bounds: tuple[Boundary, ...] = ("word",) * 7 + ("start", "end", "none")
    while len(terms) < n:
        phrase = "".join(rng.choice(syll) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.1:
            k = rng.randrange(len(phrase))
            phrase = phrase[:k] + phrase[k] + phrase[k:]  # "tassa": doubled, not stretched
        if rng.random() < 0.2:
            phrase += " " + "".join(rng.choice(syll) for _ in range(2))
        if phrase not in seen:
            seen.add(phrase)
            weight = rng.randint(1, 10) if rng.random() < 0.95 else -rng.randint(1, 5)
            terms.append(Term(phrase, weight, "generated", rng.choice(bounds)))
    combos = tuple(
        Combo((terms[i].phrase, terms[i + 1].phrase), 5, 6, "generated") for i in range(0, 200, 2)
    )
    cat = Category("generated", "generated", True, 10, 12, tuple(terms), combos)
    profiles = tuple(replace(p, categories=(*p.categories, "generated")) for p in base.profiles)
    return replace(base, categories=(*base.categories, cat), profiles=profiles)


@pytest.fixture(scope="session")
def ks2_50k(policy: Policy) -> Compiled:
    """The shipped lists plus 50,000 generated terms (compiling takes several seconds)."""
    return Compiled(generated_policy(policy, 50_000), "ks2", AFTER_EXEMPTION)


def listed(compiled: Compiled) -> list[str]:
    """Every phrase the automaton holds: terms, patterns expanded, combination parts and
    guards; at most 3,000 of them (a sample, the same on every run)."""
    found = sorted(compiled.patterns)
    return found[:: max(1, len(found) // 3000)]


def streamed(compiled: Compiled, text: str) -> list[Alert]:
    """What the keystroke path alerts on for ``text`` (the bulk path's reference)."""
    stream = Stream(compiled)
    stream.feed_text(text)
    stream.finish()
    return list(stream.standing)


def same_alerts(a: list[Alert], b: list[Alert]) -> bool:
    """The same alerts; those that waited for their sentence may come in another order."""
    def key(x: Alert) -> tuple[object, ...]:
        return (x.start, x.end, x.category, x.terms, x.score, x.suppressed, x.context)

    return sorted(a, key=key) == sorted(b, key=key)


@pytest.fixture(scope="module")
def shipped_terms(ks2: Compiled) -> list[str]:
    return listed(ks2)


@pytest.fixture(scope="module")
def big_terms(ks2_50k: Compiled) -> list[str]:
    return listed(ks2_50k)
