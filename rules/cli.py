"""``safeguard-rules``: check text and URLs against a policy, validate it, import lists.

    safeguard-rules check [--rules DIR] [--profile P]     < text
    safeguard-rules check-url [--rules DIR] [--profile P] URL...
    safeguard-rules validate [--rules DIR]
    safeguard-rules evaluate [--rules DIR] [--profile P] [--corpus DIR] [--quiet]
    safeguard-rules examples [--rules DIR] [--category C]
    safeguard-rules import-e2guardian SRC --out FILE [--category NAME] [--threshold N]

Output is one JSON object per line. Exit 0 on success (alerts or none), 1 on bad input
or an invalid policy, 2 on bad usage. Typed text is never logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from rules.compile import Compiled
from rules.e2guardian import import_lists, to_toml
from rules.embed import MODEL_DIR, SentenceModel
from rules.evaluate import (
    DEFAULT_CORPUS,
    combined,
    evaluate,
    pattern_judge,
    recorded,
    render,
    render_record,
    semantic_judge,
)
from rules.examples import check_examples
from rules.load import DEFAULT_DIR, load_policy
from rules.match import match_text
from rules.pattern import expand_term
from rules.schema import PolicyError
from rules.semantic import Bank, SemanticJudge
from rules.urls import UrlMatcher

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="safeguard-rules",
        description="Check text and URLs against a policy, validate it, import lists.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, helptext in (
        ("check", "match text read from standard input; one JSON line per alert (none: "
                  "no alert)"),
        ("check-url", "match URLs and the search queries in them; one JSON line per URL"),
    ):  # fmt: skip
        s = sub.add_parser(name, help=helptext, description=helptext)
        s.add_argument("--rules", type=Path, default=DEFAULT_DIR, help="policy folder")
        s.add_argument("--profile", default="ks2", help="ks1, ks2 or staff (default ks2)")
        if name == "check":
            s.add_argument("--semantic", choices=("on", "off"), default="on",
                           help="the semantic stage too, as a PC (default on)")
        if name == "check-url":
            s.add_argument("urls", nargs="+", metavar="URL")
    e = sub.add_parser("evaluate", help="recall and false alerts on the evaluation corpus",
                       description="Judge every corpus text as a PC would; print recall and "
                       "false-alert rates per category (Markdown), the open part's misses "
                       "and false alerts, and only counts for the held-back part.")
    e.add_argument("--rules", type=Path, default=DEFAULT_DIR, help="policy folder")
    e.add_argument("--profile", default="ks2", help="ks1, ks2 or staff (default ks2)")
    e.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus folder")
    e.add_argument("--quiet", action="store_true", help="tables only, no misses listed")
    e.add_argument("--record", type=Path, default=None,
                   help="also write the counts of both runs (patterns alone, both stages) as "
                        "the floors CI holds the policy to")
    e.add_argument("--semantic", choices=("on", "off"), default="on",
                   help="run the semantic stage too, as a PC does (default on, where the "
                        "policy has one)")
    x = sub.add_parser("examples", help="check every entry catches the example it carries")
    x.add_argument("--rules", type=Path, default=DEFAULT_DIR, help="policy folder")
    x.add_argument("--category", default=None, help="only this category's entries")
    v = sub.add_parser("validate", help="check a policy folder")
    v.add_argument("--rules", type=Path, default=DEFAULT_DIR)
    i = sub.add_parser("import-e2guardian", help="convert e2guardian weighted phrase lists")
    i.add_argument("src", type=Path)
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--category", default="e2guardian")
    i.add_argument("--threshold", type=int, default=50)
    return p


def _print(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")


def _semantic(compiled: Compiled, profile: str) -> SemanticJudge | None:
    """The policy's semantic stage with the model from rules/models, if it has one on."""
    sem = compiled.policy.semantic
    if sem is None or not sem.enabled:
        return None
    model = SentenceModel(MODEL_DIR / sem.model, sem.model_sha256)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "safeguard-rules"
    judge = SemanticJudge(compiled.policy, profile, model, Bank(sem.exemplars, model, cache))
    return judge if judge.on else None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except PolicyError as exc:
        sys.stderr.write(f"safeguard-rules: {exc}\n")
        return 1
    except (OSError, UnicodeError) as exc:
        sys.stderr.write(f"safeguard-rules: {exc}\n")
        return 1


def _run(args: argparse.Namespace) -> int:
    commands = {"validate": _validate, "import-e2guardian": _import, "examples": _examples,
                "evaluate": _evaluate, "check": _check, "check-url": _check_url}  # fmt: skip
    return commands[args.cmd](args)


def _validate(args: argparse.Namespace) -> int:
    policy = load_policy(args.rules)
    terms = sum(len(c.terms) + len(c.combos) for c in policy.categories)
    # Phrases each category's patterns expand to: what the automaton holds.
    phrases = {c.name: sum(len(seg) for t in c.terms for seg in expand_term(t)[0])
               + sum(len(alts) for k in c.combos for alts in k.alternatives)
               for c in policy.categories}  # fmt: skip
    _print({"ok": True, "version": policy.version, "categories": len(policy.categories),
            "entries": terms, "phrases": phrases, "guards": len(policy.guards),
            "classes": len(policy.classes), "urls": len(policy.urls),
            "usb_rules": len(policy.usb), "profiles": [p.name for p in policy.profiles],
            "exemptions": len(policy.exemptions)})  # fmt: skip
    return 0


def _import(args: argparse.Namespace) -> int:
    if not 1 <= args.threshold <= 100000:
        raise PolicyError(f"--threshold must be 1..100000, got {args.threshold}")
    result = import_lists(args.src, limit=args.threshold)
    args.out.write_text(to_toml(result, args.category, args.threshold), encoding="utf-8")
    for w in result.warnings[:20]:
        sys.stderr.write(f"warning: {w}\n")
    log.info("e2guardian.imported entries=%d warnings=%d", len(result.entries),
             len(result.warnings))  # fmt: skip
    _print({"ok": True, "files": result.files, "entries": len(result.entries),
            "warnings": len(result.warnings), "out": str(args.out)})  # fmt: skip
    return 0


def _examples(args: argparse.Namespace) -> int:
    faults = check_examples(load_policy(args.rules), only=args.category)
    for f in faults:
        _print({"where": f.where, "category": f.category, "fault": f.fault})
    _print({"ok": not faults, "faults": len(faults)})
    return 1 if faults else 0


def _evaluate(args: argparse.Namespace) -> int:
    if not args.corpus.is_dir():
        raise PolicyError(f"{args.corpus}: not a corpus folder")
    compiled = Compiled(load_policy(args.rules), args.profile)
    patterns = pattern_judge(compiled)
    judge, stage = patterns, "patterns only"
    second = _semantic(compiled, args.profile) if args.semantic == "on" else None
    if second is not None:
        judge = combined(patterns, semantic_judge(second))
        stage = "patterns and the semantic stage"
    sys.stdout.write(f"Profile {args.profile}, {stage}.\n\n")
    report = evaluate(judge, args.corpus)
    sys.stdout.write(render(report, show_open=not args.quiet))
    if args.record is not None:
        alone = report if judge is patterns else evaluate(patterns, args.corpus)
        runs = {"patterns": recorded(alone)}
        if judge is not patterns:
            runs["both"] = recorded(report)
        args.record.write_text(render_record(runs), encoding="utf-8")
    return 0


def _check(args: argparse.Namespace) -> int:
    """As a PC: the patterns over the text, then the semantic stage sentence by sentence
    for the categories the patterns did not alert in."""
    compiled = Compiled(load_policy(args.rules), args.profile)
    text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    alerts = match_text(compiled, text)
    for alert in alerts:
        _print({"stage": "patterns", **alert.to_json()})
    second = _semantic(compiled, args.profile) if args.semantic == "on" else None
    said = {a.category for a in alerts}
    extra = [a for a in second.judge(text) if a.category not in said] if second else []
    for semantic in extra:
        _print(semantic.to_json())
    log.info("check.done alerts=%d semantic=%d", len(alerts), len(extra))
    return 0


def _check_url(args: argparse.Namespace) -> int:
    matcher = UrlMatcher(Compiled(load_policy(args.rules), args.profile))
    for url in args.urls:
        found = matcher.match(url)
        if found.matched:
            _print(found.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
