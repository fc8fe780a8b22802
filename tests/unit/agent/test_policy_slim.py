"""The policy as a PC keeps it: packed exemplars read back exactly as the loader made them."""

from __future__ import annotations

import pickle

import pytest

from agent.policy_slim import PackedExemplars, for_a_pc
from rules.load import load_policy
from rules.schema import Exemplar

pytestmark = pytest.mark.unit

SOME = (
    Exemplar("g-1", "grooming", "are you home alone", why="a supervision check", where="a:1"),
    Exemplar("i-1", "innocent", "home alone is a film 🎬 we watched", why="", where="b:2"),
    Exemplar("b-1", "bullying", "nobody wants you in the group chat", why="exclusion"),
)


def test_packed_exemplars_read_back_without_the_authors_text() -> None:
    packed = PackedExemplars(SOME)
    assert len(packed) == 3
    assert list(packed) == [Exemplar(e.id, e.category, e.text, why="") for e in SOME]
    assert packed[-1].text == "nobody wants you in the group chat"
    assert packed[1].text == SOME[1].text  # an emoji survives the UTF-8 packing
    assert [e.id for e in packed[:2]] == ["g-1", "i-1"]
    with pytest.raises(IndexError):
        packed[3]


def test_packed_exemplars_cross_the_child_pipe_unchanged() -> None:
    packed = PackedExemplars(SOME)
    again = pickle.loads(pickle.dumps(packed, pickle.HIGHEST_PROTOCOL))  # noqa: S301  # our own
    assert again == packed and hash(again) == hash(packed)
    assert list(again) == list(packed)


def test_the_shipped_bank_is_packed_in_order_on_a_pc() -> None:
    policy = load_policy()
    assert policy.semantic is not None
    slim = for_a_pc(policy).semantic
    assert slim is not None and isinstance(slim.exemplars, PackedExemplars)
    assert [(e.id, e.category, e.text) for e in slim.exemplars] == [
        (e.id, e.category, e.text) for e in policy.semantic.exemplars]  # fmt: skip
