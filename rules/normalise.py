"""Text normalisation that evasion does not fool, with a map back to what was typed.

Pipeline, per raw character then per stream:

1. *fold*: NFKC, case folding, diacritics stripped, look-alikes and leetspeak mapped to
   Latin letters, zero-width and format characters dropped; every other non-alphanumeric
   character becomes a single separator " ".
2. *collapse*: a gap between two one-character tokens is deleted (``k.i.l.l`` -> ``kill``)
   and marked *soft*, so each letter still starts a word; gaps between real words stay.
3. *squeeze*: runs of one character become one character plus a run length, so
   ``kiiiill`` and ``kill`` meet; the matcher checks run lengths so ``as`` is not ``ass``.

``StreamNormaliser`` does this one keystroke at a time (it holds back at most one
character); ``squeeze_parts`` does steps 1-3 with C-speed string operations for the bulk
path and must produce the very same string.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

SEP = " "

# Look-alikes that NFKC leaves alone: Cyrillic and Greek letters that pass for Latin ones.
# (RUF001 flags ambiguous letters; here they are the point.)
_CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",  # noqa: RUF001
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d",  # noqa: RUF001
    "ԛ": "q", "ԝ": "w", "ӏ": "l", "ь": "b", "ɡ": "g", "ı": "i",  # noqa: RUF001
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",  # noqa: RUF001
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "μ": "u",  # noqa: RUF001
}  # fmt: skip
# Leetspeak: digits and symbols typed for letters. 2, 6 and 8 stay digits ("gr8").
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "9": "g",
         "@": "a", "$": "s", "|": "l", "€": "e"}  # fmt: skip


# Emoji that pupils use as code words read as those words, so a list entry written in words
# catches them ("need a 🔌" is "need a plug"). Each becomes its word with a gap on each side.
EMOJI = {
    "🔌": "plug", "🍃": "leaf", "🌿": "herb", "🍁": "leaf", "🌲": "tree", "❄": "snow",
    "☃": "snowman", "⛄": "snowman", "💊": "pill", "💉": "needle", "🍄": "mushroom",
    "🍆": "aubergine", "🍑": "peach", "🌽": "corn", "💦": "splash", "👅": "tongue",
    "🔞": "eighteen", "🔪": "knife", "🗡": "dagger", "⚔": "swords", "🔫": "gun",
    "💣": "bomb", "🧨": "dynamite", "🩸": "blood", "⚰": "coffin", "🪦": "grave",
    "💀": "skull", "☠": "skull", "🪢": "rope", "🐸": "frog", "🥛": "milk", "🐷": "pig",
    "🐖": "pig", "🐒": "monkey", "🐵": "monkey", "🦍": "gorilla", "🍉": "watermelon",
    "🎰": "slots", "🎲": "dice", "🃏": "cards", "💰": "moneybag", "💸": "money",
    "📸": "camera", "📷": "camera", "🎥": "camera", "📹": "camera", "🤫": "shush",
    "🤐": "shush", "🚬": "cigarette", "🍺": "beer", "🍷": "wine", "🥃": "whisky",
    "🍾": "champagne", "🖕": "middlefinger", "🤮": "vomit", "🐋": "whale", "🐳": "whale",
    "🏳": "flag", "🤡": "clown", "🗑": "bin", "🚮": "bin", "😵": "dizzy", "🥵": "hot",
    "😈": "devil", "🍭": "lolly", "🍬": "sweet", "🧁": "cupcake", "👙": "bikini",
    "🩲": "pants", "🛏": "bed", "🚿": "shower", "🛁": "bath", "🔥": "fire",
    "🥦": "broccoli", "🆔": "id", "🧕": "hijab", "🧟": "zombie", "🏫": "school",
    "👻": "snapchat",  # Snapchat's logo: "add my 👻" is how pupils give their handle
}  # fmt: skip

# Apostrophes vanish so that "don't" and "dont" meet.
_DROP = frozenset("'\u2019\u2018\u02bc`\u00b4")


def _fold_char(ch: str) -> str:
    if ch in _DROP:
        return ""
    if ch in EMOJI:
        return SEP + EMOJI[ch] + SEP
    out = []
    for c in unicodedata.normalize("NFKC", ch).casefold():
        for d in unicodedata.normalize("NFD", c):
            cat = unicodedata.category(d)
            if cat in ("Mn", "Mc", "Me", "Cf"):
                continue  # diacritics, zero-width and format characters
            d = LEET.get(d, _CONFUSABLES.get(d, d))
            out.append(d if d.isalnum() else SEP)
    return "".join(out)


class _FoldTable(dict[int, str]):
    """Lazily filled ``str.translate`` table: ordinal -> folded string."""

    def __missing__(self, key: int) -> str:
        folded = _fold_char(chr(key))
        self[key] = folded
        return folded


FOLD = _FoldTable()


def fold(text: str) -> str:
    """Step 1 only: the folded text (lengths may differ from the input)."""
    return text.translate(FOLD)


# Emission sink: (char, soft, raw_start, raw_end). ``soft`` marks a deleted gap before it.
Sink = Callable[[str, bool, int, int], None]
NormState = tuple[int, int, int, str, int]


class StreamNormaliser:
    """Steps 1 and 2, one raw character at a time; the sink does step 3."""

    __slots__ = ("_emit", "_gap", "_held", "_held_at", "_tok")

    def __init__(self, emit: Sink) -> None:
        self._emit = emit
        self.reset()

    def reset(self) -> None:
        self._tok = 0  # length of the last token, capped at 2; 0 before any token
        self._gap = -1  # raw index where the pending gap began, -1 when not in a gap
        self._held = ""  # a one-letter token after a gap after a one-letter token
        self._held_at = -1

    def state(self) -> NormState:
        return (self._tok, self._gap, self._held_at, self._held, 0)

    def restore(self, st: NormState) -> None:
        self._tok, self._gap, self._held_at, self._held, _ = st

    def feed(self, ch: str, at: int) -> None:
        for c in FOLD[ord(ch)]:
            self._step(c, at)

    def _step(self, c: str, at: int) -> None:
        emit = self._emit
        if c == SEP:
            if self._held:  # the held token ended at one letter: delete the gap before it
                emit(self._held, True, self._held_at, self._held_at + 1)
                self._held = ""
                self._gap = at
            elif self._tok and self._gap < 0:
                self._gap = at
                if self._tok >= 2:  # a gap after a real word is certain: emit it now
                    emit(SEP, False, at, at + 1)
            return
        if self._held:  # the token after the gap has two letters: the gap stays
            emit(SEP, False, self._gap, self._gap + 1)
            emit(self._held, False, self._held_at, self._held_at + 1)
            emit(c, False, at, at + 1)
            self._held, self._tok, self._gap = "", 2, -1
        elif self._gap >= 0:
            if self._tok == 1:
                self._held, self._held_at, self._tok = c, at, 1
            else:
                emit(c, False, at, at + 1)
                self._tok, self._gap = 1, -1
        else:
            emit(c, False, at, at + 1)
            self._tok = 2 if self._tok else 1

    def flush(self) -> None:
        """End of text: a held letter is a one-letter token."""
        if self._held:
            self._emit(self._held, True, self._held_at, self._held_at + 1)
            self._held = ""


class Squeezed:
    """Step 3 as a sink: the squeezed text with, per character, its run length, whether a
    deleted gap precedes it, and the raw span it came from. Lists are trimmed from the
    front by ``trim``; ``base`` is the absolute index of their first item."""

    __slots__ = ("base", "chars", "ends", "runs", "soft", "starts")

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.soft: list[bool] = []
        self.runs: list[int] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.base = 0

    def clear(self) -> None:
        for lst in (self.chars, self.soft, self.runs, self.starts, self.ends):
            lst.clear()
        self.base = 0

    def __len__(self) -> int:
        return self.base + len(self.chars)

    def __call__(self, c: str, soft: bool, start: int, end: int) -> None:
        if self.chars and self.chars[-1] == c:
            self.runs[-1] += 1  # a stretched letter (or a doubled one) joins the run
            self.ends[-1] = end
            return
        self.chars.append(c)
        self.soft.append(soft)
        self.runs.append(1)
        self.starts.append(start)
        self.ends.append(end)

    def text(self) -> str:
        return "".join(self.chars)

    def truncate(self, n: int, last_run: int, last_end: int) -> None:
        """Undo to ``n`` characters, the last with the given run and raw end."""
        k = n - self.base
        for lst in (self.chars, self.soft, self.runs, self.starts, self.ends):
            del lst[k:]
        if k > 0:
            self.runs[-1] = last_run
            self.ends[-1] = last_end

    def trim(self, keep: int) -> None:
        """Forget all but the last ``keep`` characters (a bounded buffer)."""
        drop = len(self.chars) - keep
        if drop > 0:
            for lst in (self.chars, self.soft, self.runs, self.starts, self.ends):
                del lst[:drop]
            self.base += drop


def normalise(text: str) -> Squeezed:
    """The whole pipeline over one string (used for list entries and tests)."""
    out = Squeezed()
    norm = StreamNormaliser(out)
    for i, ch in enumerate(text):
        norm.feed(ch, i)
    norm.flush()
    return out


# Constant replacements ("") keep ``re.sub`` in C (a group template calls Python per match).
# A gap between two one-character tokens:
COLLAPSE = re.compile(r"(?<=(?<![^ ])[^ ]) +(?=[^ ](?![^ ]))")
_HAS_COLLAPSE = re.compile(r" [^ ] +[^ ](?![^ ])")  # the same, 4x faster to rule out
_TRAILING_SINGLE = re.compile(r"(?<![^ ])[^ ] +$")
SPACES = re.compile(" {2,}")
RUNS = re.compile(r"(.)\1+", re.DOTALL)  # a run (``match`` maps offsets with it)
_RUN_TAIL = re.compile(r"(.)(?=\1)", re.DOTALL)  # every character but the last of a run


def fast_squeeze(text: str) -> tuple[str, str, bool]:
    """Steps 1-3 at C speed, without the map back to raw offsets. Returns the squeezed
    string, equal to ``normalise(text).text()``, the unsqueezed one (spaces single, so
    words line up with the squeezed string), and whether a gap was deleted, i.e. whether
    soft boundaries may exist."""
    parts = squeeze_parts(text)
    return parts.squeezed, parts.unsqueezed, parts.collapsed


class Parts(NamedTuple):
    """What ``squeeze_parts`` computes on the way; ``match`` maps offsets back with it."""

    folded: str  # step 1: ``text.translate(FOLD)``
    lead: int  # separators stripped from the front of ``folded``
    body: str  # ``folded[lead:]``, trailing gap after a one-letter token stripped
    collapsed: bool  # a gap between one-letter tokens was deleted (soft boundaries)
    spaced: str  # ``body`` with those gaps deleted
    unsqueezed: str  # step 2: gaps collapsed, other gaps one separator
    squeezed: str  # step 3: runs of one character squeezed


def squeeze_parts(text: str) -> Parts:
    """Steps 1-3 with C-speed string operations (the bulk path); ``squeezed`` equals
    ``normalise(text).text()``."""
    folded = text.translate(FOLD)
    body = folded.lstrip(SEP)
    lead = len(folded) - len(body)
    # The stream never emits a gap after one letter.
    if body.endswith(SEP) and _TRAILING_SINGLE.search(body):
        body = body.rstrip(SEP)
    spaced, collapsed = body, 0
    if _HAS_COLLAPSE.search(SEP + body):
        spaced, collapsed = COLLAPSE.subn("", body)
    unsqueezed = SPACES.sub(SEP, spaced)
    squeezed = _RUN_TAIL.sub("", unsqueezed)
    return Parts(folded, lead, body, collapsed > 0, spaced, unsqueezed, squeezed)


class _OddTable(dict[int, str | None]):
    """``str.translate`` table that keeps only characters whose fold is not exactly one
    character (apostrophes, zero-width, ``ß``, ligatures...): their offsets shift."""

    def __missing__(self, key: int) -> str | None:
        odd = None if len(FOLD[key]) == 1 else chr(key)
        self[key] = odd
        return odd


ODD = _OddTable()
