"""Measure a policy on the evaluation corpus (``rules/corpus/``): recall per category on
texts that must alert, false alerts on texts that must not, as a PC would judge them.

Each text is judged on its own, as typed and then sent (Enter) or searched: the pattern
stage's ``match_text`` (equal to the keystroke ``Stream``), then, when given, the semantic
stage on each of its sentences. A must-alert text is *caught* when an alert (not one an
exemption suppressed) names its category, or one of the categories its line adds with
``+category``. An innocent text is a *false alert* when anything alerts.

The open part's misses and false alerts are listed; the held-back part is only counted,
so nobody reads it while writing patterns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rules.compile import Compiled
from rules.match import match_text
from rules.schema import CATEGORIES, PolicyError
from rules.semantic import SemanticJudge

DEFAULT_CORPUS = Path(__file__).resolve().parent / "corpus"
PARTS = ("open", "heldback")
_LINE = re.compile(r"^(chat|search|evasion|schoolwork)((?: \+[a-z_]+)*): (.+)$")

# A judge: text in, the categories that alert (unsuppressed), each with a short reason.
Judge = Callable[[str], dict[str, str]]


@dataclass(frozen=True)
class Text:
    kind: str
    text: str
    categories: tuple[str, ...]  # must alert in one of these; () for innocent texts
    where: str  # file:line


def read_corpus_file(path: Path, category: str | None) -> list[Text]:
    out = []
    for no, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise PolicyError(f"{path}:{no}: expected 'kind: text' (kind: chat, search, "
                              f"evasion or schoolwork)")  # fmt: skip
        extra = tuple(x for x in m.group(2).split(" +") if x)
        for cat in extra:
            if cat not in CATEGORIES:
                raise PolicyError(f"{path}:{no}: unknown category +{cat}")
        cats = ((category, *extra) if category else ())
        out.append(Text(m.group(1), m.group(3), cats, f"{path.name}:{no}"))
    return out


def read_folder(folder: Path, alert: bool) -> list[Text]:
    if not folder.is_dir():
        return []
    out: list[Text] = []
    for path in sorted(folder.glob("*.txt")):
        out.extend(read_corpus_file(path, path.stem if alert else None))
    return out


@dataclass
class Score:
    """Counts for one part of the corpus."""

    alert_total: dict[str, int] = field(default_factory=dict)
    caught: dict[str, int] = field(default_factory=dict)
    caught_any: int = 0  # caught in some category, not necessarily its own
    innocent_total: int = 0
    false_by_category: dict[str, int] = field(default_factory=dict)
    false_texts: int = 0
    misses: list[tuple[Text, dict[str, str]]] = field(default_factory=list)
    false_alerts: list[tuple[Text, dict[str, str]]] = field(default_factory=list)

    @property
    def alerts(self) -> int:
        return sum(self.alert_total.values())

    @property
    def recall(self) -> float:
        return sum(self.caught.values()) / self.alerts if self.alerts else 1.0

    def recall_of(self, cat: str) -> float:
        n = self.alert_total.get(cat, 0)
        return self.caught.get(cat, 0) / n if n else 1.0

    @property
    def false_rate(self) -> float:
        return self.false_texts / self.innocent_total if self.innocent_total else 0.0

    def false_rate_of(self, cat: str) -> float:
        n = self.innocent_total
        return self.false_by_category.get(cat, 0) / n if n else 0.0


def score(judge: Judge, alert_texts: Iterable[Text], innocent: Iterable[Text]) -> Score:
    sc = Score()
    for t in alert_texts:
        cat = t.categories[0]
        sc.alert_total[cat] = sc.alert_total.get(cat, 0) + 1
        found = judge(t.text)
        if any(c in found for c in t.categories):
            sc.caught[cat] = sc.caught.get(cat, 0) + 1
        else:
            sc.misses.append((t, found))
        if found:
            sc.caught_any += 1
    for t in innocent:
        sc.innocent_total += 1
        found = judge(t.text)
        if found:
            sc.false_texts += 1
            sc.false_alerts.append((t, found))
            for c in found:
                sc.false_by_category[c] = sc.false_by_category.get(c, 0) + 1
    return sc


def pattern_judge(compiled: Compiled) -> Judge:
    def judge(text: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for a in match_text(compiled, text):
            if not a.suppressed and a.category not in out:
                out[a.category] = " | ".join(a.terms)
        return out

    return judge


def semantic_judge(judge: SemanticJudge) -> Judge:
    """The semantic stage as a PC runs it: sentence by sentence."""

    def run(text: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for a in judge.judge(text):
            if not a.suppressed and a.category not in out:
                out[a.category] = f"~{a.exemplar} {a.similarity:.2f} p={a.probability:.2f}"
        return out

    return run


def combined(*judges: Judge) -> Judge:
    def judge(text: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for j in judges:
            for cat, why in j(text).items():
                out.setdefault(cat, why)
        return out

    return judge


@dataclass
class Report:
    parts: dict[str, Score]  # "open", "heldback"
    typing: Score | None


def evaluate(judge: Judge, corpus: Path = DEFAULT_CORPUS) -> Report:
    parts = {}
    for part in PARTS:
        alert = read_folder(corpus / part / "alert", True)
        innocent = read_folder(corpus / part / "innocent", False)
        if alert or innocent:
            parts[part] = score(judge, alert, innocent)
    typing = read_folder(corpus / "typing", False)
    return Report(parts, score(judge, (), typing) if typing else None)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table(sc: Score, title: str) -> list[str]:
    """A Markdown table: per category, recall on must-alert texts and false alerts on the
    innocent ones (the share of all innocent texts that alerted in that category)."""
    lines = [f"**{title}**: {sc.alerts} must-alert texts, {sc.innocent_total} innocent", "",
             "| category | must alert | caught | recall | false alerts | false-alert rate |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for cat in CATEGORIES:
        n = sc.alert_total.get(cat, 0)
        if not n and not sc.false_by_category.get(cat):
            continue
        lines.append(f"| {cat} | {n} | {sc.caught.get(cat, 0)} | {sc.recall_of(cat):.3f} | "
                     f"{sc.false_by_category.get(cat, 0)} | {_pct(sc.false_rate_of(cat))} |")
    lines.append(f"| **overall** | {sc.alerts} | {sum(sc.caught.values())} | "
                 f"**{sc.recall:.3f}** | {sc.false_texts} | **{_pct(sc.false_rate)}** |")
    return lines


def render(report: Report, show_open: bool = True) -> str:
    out: list[str] = []
    for part, sc in report.parts.items():
        name = "Open part" if part == "open" else "Held-back part (counts only)"
        out += [*table(sc, name), ""]
        if part == "open" and show_open:
            for t, found in sc.misses:
                got = ", ".join(f"{c} ({w})" for c, w in found.items()) or "nothing"
                out.append(f"miss  {t.where} [{t.categories[0]}] {t.text!r} -> {got}")
            for t, found in sc.false_alerts:
                got = ", ".join(f"{c} ({w})" for c, w in found.items())
                out.append(f"false {t.where} {t.text!r} -> {got}")
            out.append("")
    if report.typing is not None:
        ty = report.typing
        per_k = 1000 * ty.false_texts / ty.innocent_total if ty.innocent_total else 0.0
        out.append(f"**Ordinary typing**: {ty.innocent_total} sentences, {ty.false_texts} "
                   f"false alerts, {per_k:.2f} per 1,000 sentences")  # fmt: skip
        if show_open:
            for t, found in ty.false_alerts:
                got = ", ".join(f"{c} ({w})" for c, w in found.items())
                out.append(f"false {t.where} {t.text!r} -> {got}")
    return "\n".join(out) + "\n"


def recorded(report: Report) -> dict[str, dict[str, int]]:
    """The counts a report's figures come from, for ``--record`` and the CI floors."""
    out: dict[str, dict[str, int]] = {}
    for part, sc in report.parts.items():
        row = {f"caught_{c}": sc.caught.get(c, 0) for c in CATEGORIES}
        row |= {f"total_{c}": sc.alert_total.get(c, 0) for c in CATEGORIES}
        row |= {"false_texts": sc.false_texts, "innocent_total": sc.innocent_total}
        out[part] = row
    if report.typing is not None:
        out["typing"] = {"false_texts": report.typing.false_texts,
                         "sentences": report.typing.innocent_total}  # fmt: skip
    return out


def render_record(stages: dict[str, dict[str, dict[str, int]]]) -> str:
    """TOML of the recorded counts per stage ("patterns", "both") and part."""
    lines = ["# The shipped policy's figures on rules/corpus, as CI holds them (tests/unit/",
             "# rules/test_published_rates.py): caught counts may not fall, false alerts may not",
             "# rise. Written by `safeguard-rules evaluate --record rules/corpus/recorded.toml`."]
    for stage, parts in stages.items():
        for part, row in parts.items():
            lines.append(f"\n[{stage}.{part}]")
            lines += [f"{k} = {v}" for k, v in row.items()]
    return "\n".join(lines) + "\n"
