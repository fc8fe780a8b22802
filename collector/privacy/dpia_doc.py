"""A small document model for the DPIA pack: headings, paragraphs, bullet lists and tables.

The texts are built once as blocks (collector/privacy/dpia_text.py,
collector/privacy/dpia_notices.py) and written out twice: as Markdown here, and as HTML by the
console's template (autoescaped, so a category title or an exemption's reason can never become
markup). No Markdown parser needed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Block = Heading | Para | Bullets | Table


@dataclass(frozen=True)
class Doc:
    name: str  # the file's stem: dpia, notice-pupils ...
    title: str
    blocks: tuple[Block, ...] = field(default=())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Doc) -> str:
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        else:
            out.append("| " + " | ".join(_cell(h) for h in b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def plain_text(doc: Doc) -> str:
    """The words a reader reads, one sentence-ending line per item: what readability scores."""
    lines = [doc.title + "."]
    for b in doc.blocks:
        if isinstance(b, Heading):
            lines.append(b.text + ".")
        elif isinstance(b, Para):
            lines.append(b.text)
        elif isinstance(b, Bullets):
            lines += [i if i.endswith((".", "?", "!")) else i + "." for i in b.items]
        else:
            lines += [", ".join(row) + "." for row in b.rows]
    return "\n".join(lines)
