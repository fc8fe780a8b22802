"""What the sentence model reads: a typed sentence with its evasions undone.

The model's word pieces know words, not the tricks pupils use to get past a filter:
"d3l3te", "s.e.c.r.e.t" and "add my 👻" reach it as fragments and unknown pieces. The
patterns see through these (``rules/normalise.py`` folds every character); the model's input
is also every ordinary sentence a pupil types, so this undoes only what cannot be ordinary
writing:

- digits and symbols *between two letters* ("d3l3te", "p!c", "ca$h"), and a zero before a
  letter ("0ut", "0f"); never at a word's edge, where they are txt-speak ("b4", "any1", "4ever")
  or numbers ("3rd", "mp3", "10am");
- letters spaced or dotted out ("s.e.c.r.e.t", "d u m b"): a run of three single letters
  joined by a dot, dash, underscore or star, or of four by spaces ("u r a" stays words);
- the few emoji that stand for one thing whatever the sentence (the model has no piece for
  any emoji; most, like 💀 or 🔥, mean something else in every other message, so they stay
  unknown to it rather than read as the literal words the patterns use).

Links and email addresses are left as typed. Only the sentences judged are read this way,
not the bank: its evasion texts are neighbours of the evasions this leaves alone. Read this
way too (with the patterns' emoji words), the bank moved, and ordinary typing raised 7 false
alerts in 5,426 sentences instead of 4; judged sentences alone caught 5 more of the open
part's 4,748 must-alert texts with the same 55 false alerts (`safeguard-rules evaluate`).
"""

from __future__ import annotations

import re

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s",
                       "!": "i"})  # fmt: skip
_LETTER = r"[^\W\d_]"
_INSIDE = re.compile(rf"(?<={_LETTER})[013459@$!]+(?={_LETTER})")
_LEADING_ZERO = re.compile(rf"(?<![\w@$!])0(?!s\b)(?={_LETTER})")  # not "0s"
_SPACED = re.compile(rf"(?<!\w){_LETTER}(?:[ .\-_*]{_LETTER}){{2,}}(?!\w)")
_ADDRESS = re.compile(r"\S*(?:://|www\.|@\S*\.)\S*")
_EMOJI = {"👻": "snapchat", "🔪": "knife", "🔫": "gun"}
_EMOJI_AT = re.compile("|".join(_EMOJI))


def readable(text: str) -> str:
    """``text`` as the model should read it (unchanged when it holds no evasion)."""
    if text.isascii() and not any(c in text for c in "013459@$!.-_* "):
        return text
    kept = _ADDRESS.findall(text)
    out = _ADDRESS.sub("\0", text)
    out = _INSIDE.sub(lambda m: m.group().translate(_LEET), out)
    out = _LEADING_ZERO.sub("o", out)
    out = _SPACED.sub(_joined, out)
    out = _EMOJI_AT.sub(lambda m: f" {_EMOJI[m.group()]} ", out)
    for address in kept:
        out = out.replace("\0", address, 1)
    return out


def _joined(m: re.Match[str]) -> str:
    run = m.group()
    letters = run[::2]
    if run[1::2].strip() == "" and len(letters) < 4:
        return run  # "u r a", "i m a": short spaced runs are words
    return letters
