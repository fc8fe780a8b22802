"""Read a policy folder (or the files of a bundle) into a validated ``Policy``.

Layout of a policy folder::

    policy.toml            version, logon notice, context caps
    classes.toml           word classes shared by every list's patterns ({photo}, {alone} ...)
    guards.toml            context that lowers or cancels alerts in its sentence
    keywords/*.toml        one category per file: threshold, window, terms, combinations
    urls.toml              domain / prefix / pattern rules
    search_engines.toml    where search queries sit in URLs
    usb.toml               the USB allowlist, first match wins
    profiles.toml          KS1, KS2, staff: sensors and categories
    incidents.toml         severity and grouping rules for the collector
    exemptions.toml        time-bounded, approved exceptions
    screenshots.toml       screenshot evidence per profile, category and severity (optional)
    evidence_key.toml      the collector's key screenshots are sealed to (it writes this)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from rules.fields import Source, Table
from rules.load_evidence import evidence_key_of, screenshots_of
from rules.load_patterns import (
    classes_of,
    expand_in,
    guards_of,
    known,
    phrase_text,
    term_of,
    unique,
)
from rules.load_semantic import semantic_of
from rules.schema import (
    BOUNDARIES,
    FIXED_SEVERITY,
    SENSORS,
    URL_KINDS,
    USB_ACTIONS,
    Assignment,
    Boundary,
    Category,
    Combo,
    Escalation,
    Exemption,
    IncidentRules,
    Policy,
    PolicyError,
    Profile,
    Recurrence,
    SearchEngine,
    SeverityRule,
    UrlRule,
    UsbRule,
)  # fmt: skip

DEFAULT_DIR = Path(__file__).resolve().parent / "lists"
FILES = ("policy.toml", "urls.toml", "search_engines.toml", "usb.toml", "profiles.toml",
         "incidents.toml", "exemptions.toml")  # fmt: skip
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_USB_ID = re.compile(r"^([0-9a-f]{4}|\*):([0-9a-f]{4}|\*)$")
_IFACE = re.compile(r"^([0-9a-f]{2}|\*):([0-9a-f]{2}|\*):([0-9a-f]{2}|\*)$")
_HOST = re.compile(r"^[a-z0-9*]([a-z0-9.*-]*[a-z0-9])?$")
_INT64 = (-(2**63), 2**63 - 1)  # TOML integers are 64-bit; tomllib does not check
_INT_TOKEN = re.compile(r"(?<![\w.:+-])[+-]?(?:0x[\da-fA-F_]+|0o[0-7_]+|0b[01_]+|\d[\d_]*)"
                        r"(?![\w.:-])")  # fmt: skip
_MAX_NESTING = 100  # past this depth a line is taken as where tomllib's recursion gave up


def read_folder(folder: Path) -> dict[str, str]:
    """Every ``*.toml`` under ``folder``, and the semantic stage's reference texts, as
    {relative path: text}."""
    if not folder.is_dir():
        raise PolicyError(f"{folder}: not a policy folder")
    files: dict[str, str] = {}
    paths = [*folder.rglob("*.toml"), *folder.glob("semantic/reference/*/*.txt")]
    for path in sorted(paths):
        rel = path.relative_to(folder).as_posix()
        try:
            files[rel] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"{path}:1: not UTF-8 ({exc.reason})") from None
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read ({exc.strerror})") from None
    return files


def load_policy(folder: Path | None = None) -> Policy:
    folder = folder or DEFAULT_DIR
    return load_files(read_folder(folder), prefix=f"{folder}/")


def load_files(files: Mapping[str, str], prefix: str = "") -> Policy:
    """Validate a policy given as {relative path: TOML text}."""
    for name in FILES:
        if name not in files:
            raise PolicyError(f"{prefix}{name}: missing")
    src = {rel: _source(prefix + rel, text) for rel, text in sorted(files.items())
           if rel.endswith(".toml")}  # fmt: skip
    classes = classes_of([s for rel, s in src.items()
                        if rel == "classes.toml" or rel.startswith("classes/")])  # fmt: skip
    words = {c.name: c.words for c in classes}
    cats = tuple(_category(s, words) for rel, s in src.items() if rel.startswith("keywords/"))
    unique([(c.name, c.where) for c in cats], "category")
    names = {c.name for c in cats}
    top = src["policy.toml"].table("policy")
    top.check_keys({"version", "notice", "context_words", "context_chars"})
    profiles = _profiles(src["profiles.toml"], names)
    assignments, default_profile = _assignments(src["profiles.toml"], profiles)
    return Policy(
        version=top.get_int("version", lo=0),
        notice=top.get_text("notice"),
        context_words=top.get_int("context_words", 8, lo=1, hi=20),
        context_chars=top.get_int("context_chars", 120, lo=10, hi=300),
        categories=cats,
        urls=_urls(src["urls.toml"], names),
        search_engines=_engines(src["search_engines.toml"]),
        usb=_usb(src["usb.toml"]),
        profiles=profiles,
        incidents=_incidents(src["incidents.toml"], names),
        exemptions=_exemptions(src["exemptions.toml"], names, {p.name for p in profiles}),
        guards=tuple(g for rel, s in src.items() if rel == "guards.toml"
                     or rel.startswith("guards/") for g in guards_of(s, names, words)),
        classes=classes,
        semantic=semantic_of(src, files, names),
        assignments=assignments,
        default_profile=default_profile,
        screenshots=screenshots_of(src, names, {p.name for p in profiles}),
        evidence_key=evidence_key_of(src),
    )


def _source(name: str, text: str) -> Source:
    """Parse one file. Also PolicyError: what ``tomllib`` raises other than TOMLDecodeError
    (RecursionError, int()'s ValueError) and integers outside TOML's 64-bit range."""
    try:
        src = Source(name, text)
    except PolicyError:
        raise
    except RecursionError:  # tomllib recurses once per nested array or inline table
        fault = "arrays or tables nested too deeply"
        raise PolicyError(f"{name}:{_deep_line(text)}: {fault}") from None
    except ValueError as exc:  # int() refuses a decimal literal of more than 4300 digits
        if "integer string conversion" not in str(exc):
            raise PolicyError(f"{name}:1: invalid TOML ({exc})") from None
        limit = sys.get_int_max_str_digits()
        long = re.compile(r"\d(?:_?\d){" + str(limit) + "}")
        line = _first_line(text, lambda s: long.search(s) is not None)
        raise PolicyError(f"{name}:{line}: integer out of range (over {limit} digits)") from None
    bad = _big_int(src.data)
    if bad is not None:
        line = _first_line(text, lambda s: any(_int_value(m[0]) == bad
                                               for m in _INT_TOKEN.finditer(s)))  # fmt: skip
        raise PolicyError(f"{name}:{line}: integer out of range (TOML integers are 64-bit, "
                          f"{_INT64[0]} to {_INT64[1]})")  # fmt: skip
    return src


def _first_line(text: str, test: Callable[[str], bool]) -> int:
    return next((no for no, line in enumerate(text.split("\n"), 1) if test(line)), 1)


def _deep_line(text: str) -> int:
    """The line on which brackets first open more than _MAX_NESTING deep (1 if none)."""
    depth = 0
    for no, line in enumerate(text.split("\n"), 1):
        for ch in line:
            depth += 1 if ch in "[{" else -1 if ch in "]}" else 0
            if depth > _MAX_NESTING:
                return no
    return 1


def _big_int(value: Any) -> int | None:
    """The first integer in parsed TOML outside the 64-bit range, if any."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if not _INT64[0] <= value <= _INT64[1] else None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for v in items:
        bad = _big_int(v)
        if bad is not None:
            return bad
    return None


def _int_value(token: str) -> int | None:
    try:
        return int(token.replace("_", ""), 0)
    except ValueError:
        return None


def _category(src: Source, classes: Mapping[str, tuple[str, ...]]) -> Category:
    src.check_top({"category", "term", "combo"})
    head = src.table("category")
    head.check_keys({"name", "title", "enabled", "threshold", "window"})
    name = head.get_str("name")
    if not _NAME.match(name):
        raise head.fail(f"name must be lower-case letters, digits and _; got {name!r}", "name")
    terms, seen = [], []
    for t in src.array("term"):
        term = term_of(t, classes, {"weight", "why", "boundary", "example"})
        key = term.phrase if term.is_pattern else phrase_text(t, "phrase", term.phrase)
        seen.append((f"{key}|{term.boundary}", t.where))
        terms.append(term)
    unique(seen, "phrase")
    combos = []
    for t in src.array("combo"):
        t.check_keys({"all", "weight", "window", "why", "boundary", "example"})
        parts = t.get_strs("all", required=True)
        if len(parts) < 2:
            raise t.fail("all must list at least two terms", "all")
        expanded = []
        for p in parts:
            phrase_text(t, "all", p)
            found = expand_in(t, "all", p, classes)
            if found.gaps:
                raise t.fail(f"a combination's part cannot have a gap (...): {p!r}", "all")
            expanded.append(found.segments[0])
        combos.append(Combo(parts, t.get_int("weight", lo=-1000, hi=1000),
                            t.get_int("window", lo=1, hi=500), t.get_text("why"),
                            _boundaries(t, len(parts)), t.where, t.get_str("example", ""),
                            tuple(expanded)))  # fmt: skip
    return Category(name, head.get_str("title", name), head.get_bool("enabled", True),
                    head.get_int("threshold", lo=1, hi=100000),
                    head.get_int("window", 12, lo=1, hi=500), tuple(terms), tuple(combos),
                    head.where)  # fmt: skip


def _boundaries(t: Table, n: int) -> tuple[Boundary, ...]:
    """A combination's boundary: one for all parts, or a list with one per part."""
    value = t.data.get("boundary", "word")
    values = [value] * n if isinstance(value, str) else value
    if not isinstance(values, list) or len(values) != n or not all(
            isinstance(v, str) and v in BOUNDARIES for v in values):  # fmt: skip
        raise t.fail(f"boundary must be one of {', '.join(BOUNDARIES)} or a list of {n} of "
                     f"them, got {value!r}", "boundary")  # fmt: skip
    return tuple(cast(list[Boundary], values))


def _urls(src: Source, cats: set[str]) -> tuple[UrlRule, ...]:
    src.check_top({"url"})
    rules = []
    for t in src.array("url"):
        t.check_keys({"kind", "value", "category", "why"})
        kind = t.get_str("kind", choices=URL_KINDS)
        value = t.get_text("value")
        if kind == "domain" and not _HOST.match(value):
            raise t.fail(f"value must be a lower-case host name, got {value!r}", "value")
        if kind == "prefix":
            value = value.lower().removeprefix("https://").removeprefix("http://")
        if kind == "pattern":
            try:
                re.compile(value)
            except (re.error, OverflowError) as exc:  # OverflowError: a{4294967296}
                raise t.fail(f"value is not a valid pattern: {exc}", "value") from None
            except RecursionError:  # sre_parse recurses once per nested group
                raise t.fail("value is not a valid pattern: groups nested too deeply",
                             "value") from None  # fmt: skip
        cat = known(t, "category", (t.get_str("category"),), cats)[0]
        rules.append(UrlRule(kind, value, cat, t.get_text("why"), t.where))  # type: ignore[arg-type]  # kind checked against URL_KINDS
    return tuple(rules)


def _engines(src: Source) -> tuple[SearchEngine, ...]:
    src.check_top({"engine"})
    out = []
    for t in src.array("engine"):
        t.check_keys({"name", "hosts", "paths", "params"})
        out.append(SearchEngine(t.get_text("name"), t.get_strs("hosts", required=True),
                                t.get_strs("paths") or ("/",),
                                t.get_strs("params", required=True)))  # fmt: skip
    return tuple(out)


def _usb(src: Source) -> tuple[UsbRule, ...]:
    src.check_top({"rule"})
    out = []
    for t in src.array("rule"):
        t.check_keys({"action", "id", "serial", "with_interface", "name", "why", "accounts"})
        ident = t.get_str("id", "*:*").lower()
        m = _USB_ID.match(ident)
        if not m:
            raise t.fail(f"id must be VVVV:PPPP in hex (or *), got {ident!r}", "id")
        ifaces = tuple(i.lower() for i in t.get_strs("with_interface"))
        for i in ifaces:
            if not _IFACE.match(i):
                raise t.fail(f"with_interface {i!r} must be cc:ss:pp in hex or *", "with_interface")
        serial = t.get_str("serial") if "serial" in t.data else None
        out.append(UsbRule(t.get_str("action", choices=USB_ACTIONS), m.group(1), m.group(2),  # type: ignore[arg-type]  # checked against USB_ACTIONS
                           serial, ifaces, t.get_text("name"), t.get_text("why"),
                           t.get_strs("accounts"), t.where))  # fmt: skip
    return tuple(out)


def _profiles(src: Source, cats: set[str]) -> tuple[Profile, ...]:
    src.check_top({"profile", "assign", "default_profile"})
    out, seen = [], []
    for t in src.array("profile"):
        t.check_keys({"name", "title", "sensors", "categories", "url_categories",
                      "full_browsing_log", "semantic"})  # fmt: skip
        name = t.get_str("name")
        if not _NAME.match(name):
            raise t.fail(f"name must be lower-case letters, digits and _; got {name!r}", "name")
        seen.append((name, t.where))
        out.append(Profile(name, t.get_str("title", name),
                           t.get_strs("sensors", required=True, choices=SENSORS),
                           known(t, "categories", t.get_strs("categories"), cats),
                           known(t, "url_categories", t.get_strs("url_categories"), cats),
                           t.get_bool("full_browsing_log", False),
                           t.get_bool("semantic", True)))  # fmt: skip
    if not out:
        raise PolicyError(f"{src.name}:1: at least one [[profile]] is needed")
    unique(seen, "profile")
    return tuple(out)


def _assignments(
    src: Source, profiles: tuple[Profile, ...]
) -> tuple[tuple[Assignment, ...], str]:
    """`default_profile = "ks2"` and `[[assign]]` with `profile` and one of `account`/`group`."""
    known = {p.name for p in profiles}
    default = src.data.get("default_profile", "ks2" if "ks2" in known else profiles[0].name)
    if not isinstance(default, str) or default not in known:
        raise PolicyError(f"{src.name}:1: default_profile must name a profile "
                          f"({', '.join(sorted(known))}); got {default!r}")  # fmt: skip
    out = []
    for t in src.array("assign"):
        t.check_keys({"profile", "account", "group"})
        profile = t.get_str("profile")
        if profile not in known:
            raise t.fail(f"no profile {profile!r} (known: {', '.join(sorted(known))})", "profile")
        account, group = t.get_str("account", ""), t.get_str("group", "")
        if bool(account) == bool(group):
            raise t.fail("give exactly one of account or group", "profile")
        out.append(Assignment(profile, account, group))
    return tuple(out), default


def _incidents(src: Source, cats: set[str]) -> IncidentRules:
    src.check_top({"incidents", "severity", "escalation", "recurrence", "fixed_severity"})
    head = src.table("incidents")
    head.check_keys({"group_window_minutes", "silent_agent_minutes"})
    sev = []
    for t in src.array("severity"):
        t.check_keys({"category", "min_score", "severity"})
        cat = t.get_str("category")
        if cat != "*":
            known(t, "category", (cat,), cats)
        sev.append(SeverityRule(cat, t.get_int("min_score", lo=0),
                                t.get_int("severity", lo=1, hi=5)))  # fmt: skip
    esc = []
    for t in src.array("escalation"):
        t.check_keys({"categories", "within_minutes", "raise_by", "why", "sequence"})
        cats_of = t.get_strs("categories", required=True)
        sequence = t.get_strs("sequence", choices=("url", "search", "keyword"))
        if sequence and (len(sequence) != 2 or sequence[0] == sequence[1]):
            raise t.fail("sequence names two different sources: the first, then the next",
                         "sequence")  # fmt: skip
        esc.append(Escalation(known(t, "categories", cats_of, cats),
                              t.get_int("within_minutes", lo=1, hi=525_600),
                              t.get_int("raise_by", lo=1, hi=4), t.get_text("why"),
                              sequence))  # fmt: skip
    rec = []
    for t in src.array("recurrence"):
        t.check_keys({"category", "days", "within_days", "raise_by", "why"})
        cat = t.get_str("category")
        known(t, "category", (cat,), cats)
        rec.append(Recurrence(cat, t.get_int("days", lo=2, hi=365),
                              t.get_int("within_days", lo=1, hi=3650),
                              t.get_int("raise_by", lo=1, hi=4), t.get_text("why")))  # fmt: skip
    fixed_table = src.table("fixed_severity", required=False)
    fixed_table.check_keys(set(FIXED_SEVERITY))
    fixed = tuple((k, fixed_table.get_int(k, v, lo=1, hi=5)) for k, v in FIXED_SEVERITY.items())
    return IncidentRules(tuple(sev), head.get_int("group_window_minutes", lo=1, hi=10_080),
                         head.get_int("silent_agent_minutes", lo=1, hi=525_600), tuple(esc),
                         tuple(rec), fixed)  # fmt: skip


def _exemptions(src: Source, cats: set[str], groups: set[str]) -> tuple[Exemption, ...]:
    src.check_top({"exemption"})
    out = []
    for t in src.array("exemption"):
        t.check_keys({"id", "group", "start", "end", "reason", "approver", "terms",
                      "categories", "sites", "exemplars"})  # fmt: skip
        group = t.get_str("group")
        if group not in groups:
            raise t.fail(f"group {group!r} is not a profile", "group")
        ex = Exemption(t.get_text("id"), group, t.get_when("start"), t.get_when("end"),
                       t.get_text("reason"), t.get_text("approver"), t.get_strs("terms"),
                       known(t, "categories", t.get_strs("categories"), cats),
                       tuple(s.lower() for s in t.get_strs("sites")), t.where,
                       t.get_strs("exemplars"))  # fmt: skip
        if ex.end <= ex.start:
            raise t.fail("end must be after start", "end")
        if not (ex.terms or ex.categories or ex.sites or ex.exemplars):
            raise t.fail("an exemption needs terms, categories, sites or exemplars")
        for term in ex.terms:
            phrase_text(t, "terms", term)
        out.append(ex)
    unique([(e.id, e.where) for e in out], "exemption id")
    return tuple(out)
