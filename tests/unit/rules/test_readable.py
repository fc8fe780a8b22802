"""What the sentence model reads: evasions undone, ordinary writing left exactly as typed."""

from __future__ import annotations

import pytest

from rules.readable import readable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("typed", "read"), [
    ("d3l3te the msgs", "delete the msgs"),  # digits between letters
    ("snap me a p!c", "snap me a pic"),  # "!" between letters
    ("ca$h 4 s@m", "cash 4 sam"),  # symbols between letters; a lone "4" is "for"
    ("g3t 0ut 0f 0ur sch00l n00b", "get out of our school noob"),  # a zero before a letter
    ("s.e.c.r.e.t ok", "secret ok"),  # three or more letters dotted out
    ("ur so d u m b", "ur so dumb"),  # four or more spaced out
    ("r-e-t-a-r-d", "retard"),
    ("add my 👻", "add my  snapchat "),
    ("k!ll", "kill"),
])  # fmt: skip
def test_evasions_are_read_as_the_words_they_hide(typed: str, read: str) -> None:
    assert readable(typed) == read


@pytest.mark.parametrize("typed", [
    "see u b4 school, gr8 day 4ever any1 coming",  # txt-speak: digits at a word's edge
    "i came 3rd in the 100m at 10am, 2nd in year7",  # ordinals, units, times
    "binary uses 0s and 1s; mp3, a4, h2o, co2, covid19",
    "u r a star",  # short spaced runs are words
    "e.g. the battle of 1066 i.e. hastings",
    "email mr.smith@school.org or see www.b4ked.com/l1t",  # addresses as typed
    "that was sick 🔥 im dead 💀",  # emoji that mean something else in every message
    "Hello, how are you today?",
    "don't u r a loser",  # an apostrophe is inside a word, not a gap between letters
    "y r u a liar",  # spaced letters txt-speak uses as words
    "its a u.k. thing",
    "sorry!i forgot",  # a missing space after "!", not a letter
    "go to b4ked.com/l1t",  # a link without www
    "J. K. Rowling",
])  # fmt: skip
def test_ordinary_writing_is_left_as_typed(typed: str) -> None:
    assert readable(typed) == typed
