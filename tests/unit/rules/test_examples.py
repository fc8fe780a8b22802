"""Every entry of the shipped lists carries an example it must catch, and catches it; an
entry weighted to alert alone makes its example alert with the whole policy. These examples
are unit tests of the patterns, kept apart from the evaluation corpus (``rules/corpus/``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rules.examples import check_examples
from rules.schema import Policy, Term

pytestmark = pytest.mark.unit


def test_the_shipped_lists_catch_their_examples(policy: Policy) -> None:
    faults = check_examples(policy)
    listed = "\n".join(f"{f.where} [{f.category}] {f.fault}" for f in faults[:60])
    assert not faults, f"{len(faults)} faults:\n{listed}"


def test_a_wrong_example_is_a_fault(policy: Policy) -> None:
    # One category of a few entries, no guards: the fault is the same in the whole lists,
    # whose checks compile them three times (two minutes of CI).
    first = policy.categories[0]
    cat = replace(first, terms=first.terms[:12])
    policy = replace(policy, categories=(cat,), guards=())
    bad = replace(cat.terms[0], example="nothing to see here")
    broken = replace(policy, categories=(replace(cat, terms=(bad, *cat.terms[1:])),
                                         *policy.categories[1:]))  # fmt: skip
    faults = check_examples(broken, only=cat.name)
    assert any(f.where == bad.where and "misses its example" in f.fault for f in faults)
    none = replace(policy, categories=(replace(cat, terms=(replace(bad, example=""),
                                                           *cat.terms[1:])),
                                       *policy.categories[1:]))  # fmt: skip
    assert any(f.fault == "no example" for f in check_examples(none, only=cat.name))
    assert isinstance(bad, Term)
