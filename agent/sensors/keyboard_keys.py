"""Key tokens and window facts: what crosses from capture to matching (no rules, no protobuf, so
the per-login helper that imports this stays small).

A one-character str is a typed character; the names below are the keys that edit the text.
"""

from __future__ import annotations

from typing import NamedTuple

BACKSPACE, DELETE, ENTER, RESET = "<bs>", "<del>", "<enter>", "<reset>"
SPECIAL = frozenset({BACKSPACE, DELETE, ENTER, RESET})


class WindowInfo(NamedTuple):  # not a dataclass: ``dataclasses`` costs the helper 1 MB
    """Where keys are going: the application and its window title (context for the DSL)."""

    app: str = ""
    title: str = ""
    password: bool = False  # a window treated as a password prompt: keys are not matched
    window_id: int = 0
