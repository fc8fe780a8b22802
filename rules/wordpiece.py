"""BERT's uncased WordPiece tokenizer in plain Python, for the semantic stage's model.

The same steps as the model's own tokenizer (``tokenizer.json`` of all-MiniLM-L6-v2:
BertNormalizer with lower-casing, BertPreTokenizer, WordPiece with ``##`` continuations,
``[CLS] ... [SEP]``); a test compares it with the ``tokenizers`` package on the corpus.
Written here so a classroom PC needs no tokenizer library (about 14 MB resident) for what
is a dictionary lookup per word piece.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

MAX_WORD = 100  # characters: longer words are [UNK], as in BERT


def _is_punct(ch: str) -> bool:
    o = ord(ch)
    if 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(o: int) -> bool:
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2A6DF
            or 0x2A700 <= o <= 0x2B73F or 0x2B740 <= o <= 0x2B81F or 0x2B820 <= o <= 0x2CEAF
            or 0xF900 <= o <= 0xFAFF or 0x2F800 <= o <= 0x2FA1F)  # fmt: skip


def _clean(text: str) -> str:
    out = []
    for ch in text:
        o = ord(ch)
        if o == 0 or o == 0xFFFD:
            continue
        cat = unicodedata.category(ch)
        if ch in "\t\n\r" or cat == "Zs":
            out.append(" ")
        elif cat in ("Cc", "Cf"):
            continue
        elif _is_cjk(o):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return "".join(out)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


def words(text: str) -> list[str]:
    """Normalised words and punctuation marks, as BERT's pre-tokenizer splits them."""
    out: list[str] = []
    for token in _fold(_clean(text)).split():
        start = 0
        for i, ch in enumerate(token):
            if _is_punct(ch):
                if start < i:
                    out.append(token[start:i])
                out.append(ch)
                start = i + 1
        if start < len(token):
            out.append(token[start:])
    return out


class WordPiece:
    def __init__(self, vocab: str) -> None:
        self.ids = {tok: i for i, tok in enumerate(vocab.split("\n")) if tok}
        self.unk, self.cls, self.sep = self.ids["[UNK]"], self.ids["[CLS]"], self.ids["[SEP]"]
        self._pieces = lru_cache(maxsize=4096)(self._word)

    def _word(self, word: str) -> tuple[int, ...]:
        if len(word) > MAX_WORD:
            return (self.unk,)
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    out.append(self.ids[piece])
                    break
                end -= 1
            else:
                return (self.unk,)
            start = end
        return tuple(out)

    def encode(self, text: str, limit: int = 128) -> list[int]:
        """Token ids with [CLS] and [SEP], at most ``limit`` of them."""
        ids = [self.cls]
        for w in words(text):
            ids.extend(self._pieces(w))
            if len(ids) >= limit - 1:
                del ids[limit - 1 :]
                break
        ids.append(self.sep)
        return ids
