"""Import DansGuardian / e2guardian weighted phrase lists into our keyword-list TOML.

Line forms (see e2guardian's ``weightedphraselist``)::

    <phrase><10>             substring match (boundary "none")
    < word ><10>             whole word; "< word>" / "<word >" bound one side only
    <a>,<b><50>              combination: both on the same page
    <education><-25>         negative weights lower the score (good phrases)
    <slut><10%>              a percentage of the naughtiness limit
    .Include</etc/e2guardian/lists/phraselists/...>
    #listcategory: "Pornography"      and other # comments

Files come in UTF-8 (some with a BOM, even mid-file), Latin-1/CP1252, CP1251, KOI8-R and
GB2312; each is decoded by trying UTF-8 first, then a legacy code page its path names.
Bad lines become warnings with file:line, never exceptions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rules.normalise import normalise
from rules.schema import PolicyError

# groups, then the weight, then an optional trailing "# comment"
_ENTRY = re.compile(r"^((?:<[^<>]*>\s*,\s*)*<[^<>]*>)\s*<\s*(-?\d+)\s*(%?)\s*>\s*(?:#.*)?$")
_GROUP = re.compile(r"<([^<>]*)>")
_INCLUDE = re.compile(r"^\.Include\s*<([^<>]+)>")
_CATEGORY = re.compile(r'^#\s*listcategory:\s*"?([^"]*)"?')
MAX_DEPTH = 10


@dataclass(frozen=True)
class Imported:
    phrases: tuple[tuple[str, str], ...]  # (phrase, boundary); one = term, more = combo
    weight: int
    where: str
    category: str


@dataclass
class ImportResult:
    entries: list[Imported] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0


def decode(data: bytes, path: str = "") -> str:
    """Text of a list file whatever its legacy encoding."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        low = path.lower()
        codec = ("koi8-r" if "koi8" in low else "cp1251" if "1251" in low or "russian" in low
                 else "gb18030" if "gb2312" in low or "chinese" in low else "cp1252")  # fmt: skip
        text = data.decode(codec, errors="replace")
    return text.replace("\ufeff", "")  # BOMs also appear mid-file where files were joined


def _group(raw: str) -> tuple[str, str]:
    start, end = raw.startswith(" "), raw.endswith(" ")
    boundary = "word" if start and end else "start" if start else "end" if end else "none"
    return raw.strip(), boundary


def parse_line(line: str) -> tuple[tuple[tuple[str, str], ...], int, bool] | None:
    """(groups, weight, is_percent) for a weighted line, or None if it is not one."""
    m = _ENTRY.match(line.strip())
    if not m:
        return None
    groups = tuple(_group(g) for g in _GROUP.findall(m.group(1)))
    return groups, int(m.group(2)), m.group(3) == "%"


def _resolve(target: str, current: Path, root: Path | None) -> Path:
    """Includes name absolute /etc/e2guardian/... paths; map them under ``root``."""
    p = Path(target)
    if p.exists() or root is None:
        return p if p.is_absolute() else current.parent / p
    parts = p.parts
    if "lists" in parts:
        tail = Path(*parts[parts.index("lists") + 1 :])
        for base in (root, root / "lists"):
            if (base / tail).exists():
                return base / tail
    return root / p.name


def import_lists(src: Path, *, limit: int = 50, root: Path | None = None) -> ImportResult:
    """Read ``src`` and everything it includes. ``limit`` is the naughtiness limit that
    percentage weights refer to. ``root`` is the ``lists`` folder includes map to."""
    if not src.is_file():
        raise PolicyError(f"{src}: no such list file")
    result = ImportResult()
    _read(src, result, limit, root or _guess_root(src), set(), 0)
    return result


def _guess_root(src: Path) -> Path | None:
    for parent in src.resolve().parents:
        if parent.name == "lists":
            return parent
    return src.resolve().parent


def _read(path: Path, result: ImportResult, limit: int, root: Path | None,
          seen: set[Path], depth: int) -> None:  # fmt: skip
    real = path.resolve()
    if real in seen or depth > MAX_DEPTH:
        result.warnings.append(f"{path}: include loop or too deep; skipped")
        return
    seen.add(real)
    try:
        text = decode(path.read_bytes(), str(path))
    except OSError as exc:
        result.warnings.append(f"{path}: cannot read ({exc.strerror})")
        return
    result.files += 1
    category = path.parent.name
    for no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        where = f"{path}:{no}"
        cat = _CATEGORY.match(stripped)
        if cat:
            category = cat.group(1).strip() or category
            continue
        if not stripped or stripped.startswith("#"):
            continue
        inc = _INCLUDE.match(stripped)
        if inc:
            _read(_resolve(inc.group(1), path, root), result, limit, root, seen, depth + 1)
            continue
        parsed = parse_line(stripped)
        if parsed is None:
            result.warnings.append(f"{where}: not a weighted phrase line; skipped")
            continue
        groups, weight, percent = parsed
        if percent:
            weight = round(limit * weight / 100)
        groups = tuple(g for g in groups if g[0])
        if not groups or any(not normalise(p).text().strip() for p, _ in groups):
            result.warnings.append(f"{where}: phrase has no letters or digits; skipped")
            continue
        if not -1000 <= weight <= 1000:
            result.warnings.append(f"{where}: weight {weight} out of range; skipped")
            continue
        result.entries.append(Imported(groups, weight, where, category))


def to_toml(result: ImportResult, name: str = "e2guardian", threshold: int = 50,
            window: int = 100) -> str:  # fmt: skip
    """One keyword-list file holding every imported entry as a single category (e2guardian
    adds all weights into one page score, good phrases included)."""
    q = json.dumps
    out = [f"# Imported from e2guardian weighted phrase lists ({result.files} files).",
           "# Weights and combinations are e2guardian's; see each entry's why.",
           "[category]", f"name = {q(name)}", f"title = {q('Imported: ' + name)}",
           "enabled = true", f"threshold = {threshold}", f"window = {window}", ""]  # fmt: skip
    seen: set[tuple[str, str]] = set()
    for e in result.entries:
        why = q(f"e2guardian {e.category}: {e.where.rsplit('/', 1)[-1]}")
        if len(e.phrases) == 1:
            phrase, boundary = e.phrases[0]
            key = (normalise(phrase).text().strip(), boundary)
            if key in seen:
                result.warnings.append(f"{e.where}: duplicate phrase; skipped")
                continue
            seen.add(key)
            out += ["[[term]]", f"phrase = {q(phrase)}", f"weight = {e.weight}",
                    f"boundary = {q(boundary)}", f"why = {why}", ""]  # fmt: skip
        else:
            parts = ", ".join(q(p) for p, _ in e.phrases)
            bounds = ", ".join(q(b) for _, b in e.phrases)
            out += ["[[combo]]", f"all = [{parts}]", f"boundary = [{bounds}]",
                    f"weight = {e.weight}", f"window = {window}", f"why = {why}", ""]  # fmt: skip
    return "\n".join(out)
