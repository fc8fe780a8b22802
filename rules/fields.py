"""Typed access to one parsed TOML table, with faults reported as ``file:line: fault``.

``tomllib`` gives values but no line numbers, so ``Table`` finds the line by scanning the
source for the table's header and the key's ``key =`` line after it.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, date, datetime
from typing import Any

from rules.schema import PolicyError

_TOML_AT = re.compile(r"\(at line (\d+)")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_-]+)\s*\]")


class Source:
    """One policy file: its display name, text and parsed content."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        # TOML ends lines at \n only; splitlines() would also split at \u2028 and friends
        # and shift every line number after one.
        self.lines = [line.removesuffix("\r") for line in text.split("\n")]
        self._headers: dict[tuple[str, bool], list[int]] | None = None
        try:
            self.data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = _TOML_AT.search(str(exc))
            line = m.group(1) if m else "1"
            fault = _TOML_AT.split(str(exc))[0].strip() or "invalid TOML"
            raise PolicyError(f"{name}:{line}: {fault}") from None

    def header_line(self, table: str, index: int | None) -> int:
        """Line of ``[table]`` or of the index-th ``[[table]]`` (1-based; 1 if not found)."""
        if self._headers is None:  # one scan per file, not one per entry
            self._headers = {}
            for no, line in enumerate(self.lines, 1):
                m = _HEADER.match(line)
                if m:
                    key = (m.group(2), m.group(1) == "[[")
                    self._headers.setdefault(key, []).append(no)
        found = self._headers.get((table, index is not None), [])
        i = index or 0
        return found[i] if i < len(found) else 1

    def key_line(self, header: int, key: str) -> int:
        """Line of ``key =`` inside the table whose header is on line ``header``."""
        pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for idx in range(header, len(self.lines)):  # idx is the 0-based line after header
            text = self.lines[idx]
            if text.lstrip().startswith("["):
                break
            if pat.match(text):
                return idx + 1
        return header

    def table(self, name: str, *, required: bool = True) -> Table:
        value = self.data.get(name)
        if value is None and not required:
            return Table(self, name, None, {})
        if not isinstance(value, dict):
            raise PolicyError(f"{self.name}:1: missing table [{name}]")
        return Table(self, name, None, value)

    def array(self, name: str) -> list[Table]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise PolicyError(f"{self.name}:1: [[{name}]] must be an array of tables")
        return [Table(self, name, i, v) for i, v in enumerate(value)]

    def check_top(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise PolicyError(f"{self.name}:1: unknown table or key {key!r}")


class Table:
    """One table; every getter checks the type and names the line on a fault."""

    def __init__(self, src: Source, name: str, index: int | None, data: dict[str, Any]):
        self.src, self.name, self.index, self.data = src, name, index, data
        self.line = src.header_line(name, index) if data else 1

    @property
    def where(self) -> str:
        return f"{self.src.name}:{self.line}"

    def fail(self, fault: str, key: str | None = None) -> PolicyError:
        line = self.src.key_line(self.line, key) if key else self.line
        return PolicyError(f"{self.src.name}:{line}: {fault}")

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise self.fail(f"unknown key {key!r} in [{self.name}]", key)

    def _get(self, key: str, default: Any) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise self.fail(f"[{self.name}] needs {key!r}")
            return default
        return self.data[key]

    def get_str(self, key: str, default: str | None = None, *,
                choices: tuple[str, ...] = ()) -> str:  # fmt: skip
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, str):
            raise self.fail(f"{key} must be a string, got {value!r}", key)
        if choices and value not in choices:
            raise self.fail(f"{key} must be one of {', '.join(choices)}; got {value!r}", key)
        return value

    def get_text(self, key: str) -> str:
        value: str = self.get_str(key)
        if not value.strip():
            raise self.fail(f"{key} must not be empty", key)
        return value

    def get_int(self, key: str, default: int | None = None, *, lo: int | None = None,
            hi: int | None = None) -> int:  # fmt: skip
        value = self._get(key, _REQUIRED if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{key} must be an integer, got {value!r}", key)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(f"{key} must be between {lo} and {hi}, got {value}", key)
        return value

    def get_bool(self, key: str, default: bool | None = None) -> bool:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false, got {value!r}", key)
        return value

    def get_strs(self, key: str, *, required: bool = False,
             choices: tuple[str, ...] = ()) -> tuple[str, ...]:  # fmt: skip
        value = self._get(key, _REQUIRED if required else [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{key} must be a list of strings, got {value!r}", key)
        for v in value:
            if choices and v not in choices:
                raise self.fail(f"{key}: {v!r} is not one of {', '.join(choices)}", key)
        return tuple(value)

    def get_when(self, key: str) -> datetime:
        value = self._get(key, _REQUIRED)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        raise self.fail(f"{key} must be a TOML date or date-time, got {value!r}", key)


_REQUIRED: Any = object()
