"""What the sentence model reads: a typed sentence with its evasions undone.

The model's word pieces know words, not the tricks pupils use to get past a filter:
"d3l3te", "s.e.c.r.e.t" and "add my 👻" reach it as fragments and unknown pieces. The
patterns see through these (``rules/normalise.py`` folds every character); the model's input
is also every ordinary sentence a pupil types, so this undoes only what cannot be ordinary
writing:

- digits and symbols *between two letters* ("d3l3te", "ca$h", and "p!c" where the "!" follows
  at most two letters: "sorry!i forgot" is a missing space), and a zero before a letter ("0ut",
  "0f"); never at a word's edge, where they are txt-speak ("b4", "any1", "4ever") or numbers
  ("3rd", "mp3", "10am");
- letters spaced or dotted out ("s.e.c.r.e.t", "d u m b"): a run of three single letters
  joined by one kind of dot, dash, underscore or star, or of four by spaces, unless every
  letter is one txt-speak uses as a word ("y r u a liar" stays words);
- the few emoji that stand for one thing in a pupil's chat (the model has no piece for any
  emoji; most, like 💀 or 🔥, mean something else in every other message, so they stay
  unknown to it rather than read as the literal words the patterns use). 👻 is read as
  Snapchat, its logo, even in October.

Links and email addresses are left as typed. Only the sentences judged are read this way,
not the bank: its evasion texts are neighbours of the evasions this leaves alone. Read this
way too (with the patterns' emoji words), the bank moved, and ordinary typing raised 7 false
alerts in 5,426 sentences instead of 4; judged sentences alone caught 5 more of the open
part's 4,748 must-alert texts with the same 55 false alerts (`safeguard-rules evaluate`).
"""

from __future__ import annotations

import re

from rules.normalise import EMOJI, LEET

_AS_LETTERS = str.maketrans({**LEET, "!": "i"})  # the patterns' leetspeak, and "!" for "i"
_LETTER = r"[^\W\d_]"
_INSIDE = re.compile(rf"(?<={_LETTER})[01345@$]+(?={_LETTER})|(?<!\w\w\w)(?<=[a-z])!(?=[a-z])")
_LEADING_ZERO = re.compile(rf"(?<![\w@$!])0(?!s\b)(?={_LETTER})")  # not "0s"
_SPACED = re.compile(rf"(?<![\w'\u2019]){_LETTER}(?P<gap>[ .\-_*]){_LETTER}(?:(?P=gap){_LETTER})+"
                     r"(?![\w'\u2019])")  # fmt: skip
_TXT_WORDS = frozenset("urnycbika")  # u, r, n(and), y(why), c(see), b(be), i, k(ok), a
_ADDRESS = re.compile(r"\S*(?:://|www\.|@[\w-]+\.[a-z]{2,}"
                      r"|[\w-]\.(?:com|co\.uk|org|net|uk|io|gg|tv|ly)\b)\S*")  # fmt: skip
_EMOJI = {e: EMOJI[e] for e in ("👻", "🔪", "🔫")}  # read as the patterns read them
_EMOJI_AT = re.compile("|".join(_EMOJI))


def readable(text: str) -> str:
    """``text`` as the model should read it (unchanged when it holds no evasion)."""
    kept = _ADDRESS.findall(text)
    out = _ADDRESS.sub("\0", text)
    out = _INSIDE.sub(lambda m: m.group().translate(_AS_LETTERS), out)
    out = _LEADING_ZERO.sub("o", out)
    out = _SPACED.sub(_joined, out)
    out = _EMOJI_AT.sub(lambda m: f" {_EMOJI[m.group()]} ", out)
    for address in kept:
        out = out.replace("\0", address, 1)
    return out


def _joined(m: re.Match[str]) -> str:
    run = m.group()
    letters = run[::2]
    if m.group("gap") == " " and (len(letters) < 4 or set(letters.lower()) <= _TXT_WORDS):
        return run  # "u r a", "y r u a": spaced runs of words
    return letters
