"""The pattern language of the keyword lists: parse a pattern, expand it into phrases.

A pattern is words separated by spaces, and it compiles into fixed phrases that the
streaming automaton already matches, so matching stays one pass with Backspace::

    send [me] [a|some] {photo}        optional words, alternatives, a word class
    kill~ you                         kill, kills, killed, killing you
    send me ...3 {photo} of you       up to 3 other words between "send me" and "{photo}"
    (are|r) (you|u) {alone}           inline alternatives

- ``{name}``: a word class from ``classes.toml``, defined once and shared by every list.
- ``word~``: the word's regular inflections (-s, -ed, -ing; a final ``e`` dropped, a final
  consonant doubled, ``y`` to ``ies``/``ied``); ``word~s``: the plural only. Irregular
  forms go in a class (``{die}``).
- ``[a|b c]``: optional: nothing, or one of the alternatives. (``?`` is refused: it would
  be read as part of a word, and typed text never has it there.)
- ``(a|b c)``: exactly one of the alternatives.
- ``...N``: a gap of 0 to N words (``...`` alone is 3). A pattern with gaps is a sequence
  of *segments*, each a set of phrases; the scorer chains them by word positions.
- ``*`` at the very start or end: no word boundary there (``*phobic`` ends a word).

``expand`` returns the segments and the gaps; the loader reports faults as ``PolicyError``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import product

from rules.schema import Boundary, PolicyError, Term

MAX_ALTERNATIVES = 4000  # phrases one segment may expand to
SPLIT_OVER = 200  # a segment of more phrases than this is stored as adjacent pieces ...
CHUNK = 48  # ... of at most about this many phrases each (see ``_chunks``)
MAX_GAP = 20  # words
DEFAULT_GAP = 3
_SPECIAL = set("{}[]()|~*")
_TOKEN = re.compile(r"\{[^{}\s]*\}|\.\.\.\d*|[\[\]()|]|[^\s\[\]()|{}]+|\S")
_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Expanded:
    segments: tuple[tuple[str, ...], ...]  # per segment, its phrases (space-separated words)
    gaps: tuple[int, ...]  # words allowed between segment i and i + 1
    boundary: Boundary


def is_pattern(text: str) -> bool:
    """Whether ``text`` uses the pattern syntax (a plain phrase is a pattern too)."""
    return any(c in _SPECIAL for c in text) or "..." in text


def inflect(word: str, plural_only: bool = False) -> tuple[str, ...]:
    """Regular English inflections of ``word``, the word itself first: ``-s`` only, or
    also ``-ed`` and ``-ing``. Over-generation is harmless: a form nobody types never
    matches. A doubled final consonant is given both ways (``stabbed``, ``stabed``)
    because pupils type both and the matcher tells a doubled letter from a single one."""
    w = word
    if len(w) < 2 or not w.isalpha():
        return (w,)
    vowels = "aeiou"
    if w.endswith("y") and w[-2] not in vowels:
        plural, verb = [w[:-1] + "ies"], [w[:-1] + "ied", w + "ing"]
    elif w.endswith(("s", "x", "z", "ch", "sh")):
        plural, verb = [w + "es"], [w + "ed", w + "ing"]
    elif w.endswith("e"):
        plural, verb = [w + "s"], [w + "d", w[:-1] + "ing"]
    else:
        plural, verb = [w + "s"], [w + "ed", w + "ing"]
        one_syllable = len(re.findall(r"[aeiouy]+", w)) == 1
        if one_syllable and w[-1] not in vowels + "wxy" and w[-2] in vowels \
                and len(w) >= 3 and w[-3] not in vowels:  # fmt: skip
            verb += [w + w[-1] + "ed", w + w[-1] + "ing"]
    forms = [w, *plural] if plural_only else [w, *plural, *verb]
    return tuple(dict.fromkeys(forms))


class _Parser:
    """Recursive descent over tokens; alternatives are tuples of word tuples."""

    def __init__(self, text: str, classes: Mapping[str, tuple[str, ...]],
                 stack: tuple[str, ...]) -> None:  # fmt: skip
        self.text = text
        self.tokens: list[str] = _TOKEN.findall(text)
        self.i = 0
        self.classes = classes
        self.stack = stack

    def fail(self, fault: str) -> PolicyError:
        return PolicyError(f"pattern {self.text!r}: {fault}")

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def sequence(self, stop: tuple[str, ...],
                 top: bool = False) -> list[tuple[tuple[str, ...], ...]]:  # fmt: skip
        """Elements until a token in ``stop`` (or a gap, at the top level); each element
        is its alternatives."""
        out = []
        while (tok := self.peek()) is not None and tok not in stop:
            if tok.startswith("..."):
                if top:
                    break
                raise self.fail("a gap (...) is only allowed between words at the top level")
            out.append(self.element())
        return out

    def element(self) -> tuple[tuple[str, ...], ...]:
        tok = self.take()
        if tok in ("[", "("):
            close = "]" if tok == "[" else ")"
            alts: list[tuple[str, ...]] = []
            while True:
                alts.extend(_join(self.sequence(("|", close)), self.fail))
                nxt = self.peek()
                if nxt is None:
                    raise self.fail(f"{tok} is not closed with {close}")
                self.take()
                if nxt == close:
                    break
            if tok == "[":
                alts.insert(0, ())
            return tuple(dict.fromkeys(alts))
        if tok.startswith("{"):
            return self.word_class(tok[1:-1])
        if tok in ("]", ")", "|") or tok == "{":
            raise self.fail(f"unexpected {tok!r}")
        if "?" in tok:  # a regex habit ("words?"): here it would make nothing optional
            raise self.fail(f"{tok!r}: '?' does not make a word optional; write [word] or "
                            "[a|b] (and a plural as word~s)")  # fmt: skip
        if tok.endswith(("~", "~s")):
            word, plural = (tok[:-2], True) if tok.endswith("~s") else (tok[:-1], False)
            if not word or any(c in _SPECIAL for c in word):
                raise self.fail(f"~ must follow a plain word, got {tok!r}")
            return tuple((form,) for form in inflect(word.lower(), plural))
        if any(c in _SPECIAL for c in tok.strip("*")):
            raise self.fail(f"unexpected character in {tok!r}")
        return ((tok,),)

    def word_class(self, name: str) -> tuple[tuple[str, ...], ...]:
        if name not in self.classes:
            raise self.fail(f"unknown word class {{{name}}} (define it in classes.toml)")
        if name in self.stack:
            raise self.fail(f"word class {{{name}}} refers to itself "
                            f"({' -> '.join((*self.stack, name))})")  # fmt: skip
        alts: list[tuple[str, ...]] = []
        for entry in self.classes[name]:
            inner = _Parser(entry, self.classes, (*self.stack, name))
            elements = inner.sequence(())
            if inner.peek() is not None:
                raise inner.fail(f"unexpected {inner.peek()!r}")
            alts.extend(_join(elements, inner.fail))
        return tuple(dict.fromkeys(alts))


def _join(elements: list[tuple[tuple[str, ...], ...]],
          fail: Callable[[str], PolicyError]) -> list[tuple[str, ...]]:  # fmt: skip
    """The product of the elements' alternatives, each a tuple of words."""
    size = 1
    for alts in elements:
        size *= len(alts)
        if size > MAX_ALTERNATIVES:
            raise fail(f"expands to more than {MAX_ALTERNATIVES} phrases; split it or use a gap")
    return [tuple(w for part in combo for w in part) for combo in product(*elements)]


def single_edge(left: list[tuple[str, ...]] | tuple[tuple[str, ...], ...],
                right: list[tuple[str, ...]] | tuple[tuple[str, ...], ...]) -> bool:  # fmt: skip
    """Whether a phrase of ``left`` ends, or one of ``right`` begins, with a one-character
    word. Two such words side by side in typed text lose the gap between them ("r u" is
    read "ru"), so a cut there would not match what the whole phrase matches."""
    return any(len(w[-1]) == 1 for w in left if w) or any(len(w[0]) == 1 for w in right if w)


def _chunks(elements: list[tuple[tuple[str, ...], ...]]
            ) -> list[list[tuple[tuple[str, ...], ...]]]:  # fmt: skip
    """A segment's elements cut into adjacent pieces whose products are small, when the
    whole product is large: "(a|b|c) (d|e|f) ..." as "(a|b|c) ...0 (d|e|f) ...0 ..." matches
    the same words, but stores a sum of phrases, not a product (a guard of a dozen
    alternatives in four places is 20,000 phrases otherwise). Every piece has a word that
    is not optional, so none can match nothing."""
    total = 1
    for alts in elements:
        total *= len(alts)
    if total <= SPLIT_OVER or all(() in alts for alts in elements):
        return [elements]
    chunks: list[list[tuple[tuple[str, ...], ...]]] = []
    cur: list[tuple[tuple[str, ...], ...]] = []
    size = 1
    for alts in elements:
        if cur and size * len(alts) > CHUNK and any(() not in a for a in cur):
            chunks.append(cur)
            cur, size = [], 1
        cur.append(alts)
        size *= len(alts)
    if chunks and all(() in a for a in cur):
        chunks[-1].extend(cur)
    else:
        chunks.append(cur)
    return chunks


def expand(text: str, classes: Mapping[str, tuple[str, ...]], split: bool = False) -> Expanded:
    """Segments (phrases per segment) and gaps of one pattern. With ``split``, a large
    segment of a pattern with word boundaries is stored as adjacent pieces (``_chunks``)."""
    src = text.strip()
    boundary: Boundary = "word"
    lead, trail = src.startswith("*"), src.endswith("*")
    src = src.strip("*").strip()
    if lead and trail:
        boundary = "none"
    elif lead:
        boundary = "end"
    elif trail:
        boundary = "start"
    parser = _Parser(src, classes, ())
    segments: list[tuple[str, ...]] = []
    gaps: list[int] = []
    while True:
        elements = parser.sequence((), top=True)
        size = 1
        for alts in elements:
            size *= len(alts)
        if size > MAX_ALTERNATIVES:
            raise parser.fail(f"expands to more than {MAX_ALTERNATIVES} phrases; "
                              "split it or use a gap")  # fmt: skip
        pieces = _chunks(elements) if split and boundary == "word" else [elements]
        joins = [_join(piece, parser.fail) for piece in pieces]
        k = 0
        while k < len(pieces) - 1:  # no cut beside a one-letter word: see ``single_edge``
            if single_edge(joins[k], joins[k + 1]):
                pieces[k : k + 2] = [pieces[k] + pieces[k + 1]]
                joins[k : k + 2] = [_join(pieces[k], parser.fail)]
            else:
                k += 1
        for n, joined in enumerate(joins):
            if not joined or not all(joined):
                raise parser.fail("a segment can match nothing (every word in it is optional)")
            # interned: the same phrase recurs in many patterns (half of them, shipped)
            segments.append(tuple(dict.fromkeys(sys.intern(" ".join(w)) for w in joined)))
            if n < len(pieces) - 1:
                gaps.append(0)
        tok = parser.peek()
        if tok is None:
            break
        parser.take()  # a gap: "...N"
        n = int(tok[3:]) if len(tok) > 3 else DEFAULT_GAP
        if not 0 <= n <= MAX_GAP:
            raise parser.fail(f"a gap is 0 to {MAX_GAP} words, got {tok}")
        if parser.peek() is None:
            raise parser.fail("a pattern cannot end with a gap")
        gaps.append(n)
    return Expanded(tuple(segments), tuple(gaps), boundary)


def class_name_ok(name: str) -> bool:
    return bool(_CLASS_NAME.match(name))


def expand_term(term: Term) -> tuple[tuple[tuple[str, ...], ...], tuple[int, ...]]:
    """A list entry's phrases per segment and its gaps: a literal is one phrase."""
    if term.classes is None:
        return ((term.phrase,),), ()
    found = expand(term.phrase, term.classes, term.split)
    return found.segments, found.gaps
