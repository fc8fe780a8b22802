"""Fuzz every policy file kind other than keywords: the loader loads or says where it is wrong.

Starting from the shipped folder, one file at a time is replaced by
(a) the shipped file parsed with ``tomllib``, structurally mutated (values retyped, keys
    deleted or added, arrays emptied, huge and negative numbers, odd strings) and written
    back with the small TOML writer below (``tomli_w`` is not a dependency), or
(b) garbage: random text, TOML-ish punctuation, the shipped text with bytes spliced in,
    or random bytes written to a real folder and read with ``read_folder``.

The loader must then either return a ``Policy`` or raise ``PolicyError`` whose message is
``<prefix><the replaced file>:<line>: <fault>``, with a line inside that file. Any other
exception (KeyError, TypeError, ValueError, RecursionError, ...) is a bug.

Keyword files are trimmed to a few terms in the base (every category is kept, so profiles,
URLs and incidents still resolve), each topic's guards file to a few guards, the word classes
to those still used, and the semantic stage's reference texts are left out: each load then
takes a small part of the time (0.25 s, not 3).
"""

from __future__ import annotations

import copy
import math
import re
import shutil
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.load import DEFAULT_DIR, FILES, load_files, load_policy, read_folder
from rules.schema import PolicyError

pytestmark = pytest.mark.unit

FUZZ = settings(derandomize=True, deadline=None, max_examples=60, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])  # fmt: skip
GARBAGE = settings(FUZZ, max_examples=40)
BYTES = settings(FUZZ, max_examples=15)


# --- a tiny TOML writer ------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """TOML source written as is: literals Python cannot hold or print (5,000-digit ints)."""

    text: str


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _string(k)


def _value(v: object) -> str:
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        # str() refuses ints of more than 4,300 digits; TOML hex has no such limit.
        return str(v) if abs(v) < 10**1000 else ("-" if v < 0 else "") + hex(abs(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def dumps(doc: Mapping[str, Any]) -> str:
    """Top-level keys, then ``[table]``s and ``[[array]]``s of tables; deeper tables inline."""
    lines, tables = [], []
    for k, v in doc.items():
        if isinstance(v, dict) or (isinstance(v, list) and v
                                   and all(isinstance(x, dict) for x in v)):  # fmt: skip
            tables.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in tables:
        for entry in v if isinstance(v, list) else [v]:
            lines += ["", f"[[{_key(k)}]]" if isinstance(v, list) else f"[{_key(k)}]"]
            lines += [f"{_key(kk)} = {_value(vv)}" for kk, vv in entry.items()]
    return "\n".join(lines) + "\n"


# --- the base policy ---------------------------------------------------------------------


def _trim(text: str) -> str:
    doc = tomllib.loads(text)
    doc["term"] = doc.get("term", [])[:3]
    doc["combo"] = doc.get("combo", [])[:1]
    if not doc["combo"]:
        del doc["combo"]
    return dumps(doc)


def _trim_guards(text: str) -> str:
    doc = tomllib.loads(text)
    doc["guard"] = doc.get("guard", [])[:3]
    return dumps(doc)


_CLASS_REF = re.compile(r"\{([a-z0-9_]+)\}")


def _trim_classes(files: dict[str, str]) -> dict[str, str]:
    """Only the word classes the trimmed lists use, and the classes those use: expanding
    every shipped class was 40% of each load."""
    docs = {rel: tomllib.loads(text) for rel, text in files.items()
            if rel == "classes.toml" or rel.startswith("classes/")}  # fmt: skip
    words = {c["name"]: c["words"] for doc in docs.values() for c in doc["class"]}
    wanted: set[str] = set()
    todo = {m for rel, text in files.items() if rel not in docs
            for m in _CLASS_REF.findall(text)}  # fmt: skip
    while todo:
        name = todo.pop()
        if name in words and name not in wanted:
            wanted.add(name)
            todo.update(m for w in words[name] for m in _CLASS_REF.findall(w))
    for rel, doc in docs.items():
        doc["class"] = [c for c in doc["class"] if c["name"] in wanted]
        files[rel] = dumps(doc)
    return files


def _trimmed_lists() -> dict[str, str]:
    # The semantic stage's reference texts are not TOML and not fuzzed here: left out.
    files = {rel: text for rel, text in read_folder(DEFAULT_DIR).items()
             if not rel.startswith("semantic/reference/")}  # fmt: skip
    return {rel: _trim(text) if rel.startswith("keywords/")
            else _trim_guards(text) if rel.startswith("guards/") else text
            for rel, text in files.items()}  # fmt: skip


_LISTS = _trimmed_lists()


def small_policy(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The trimmed shipped files, with ``extra`` files added (their word classes kept)."""
    return _trim_classes({**_LISTS, **(extra or {})})


BASE = small_policy()
KINDS = sorted(FILES)  # every non-keyword file kind the loader reads
assert all(not k.startswith("keywords/") for k in KINDS)
# A profiles.toml that drops a profile makes exemptions.toml's `group` wrong: that error
# rightly names exemptions.toml. No other file is checked against another non-keyword file.
ALSO_BLAMED = {"profiles.toml": ("exemptions.toml", "is not a profile")}


def check(files: Mapping[str, str], rel: str, prefix: str = "") -> None:
    """Load ``files`` (``rel`` replaced): a Policy, or a PolicyError naming file and line."""
    try:
        load_files(files, prefix)
    except PolicyError as exc:
        msg = str(exc)
        blamed, need = rel, ""
        if rel in ALSO_BLAMED and msg.startswith(prefix + ALSO_BLAMED[rel][0] + ":"):
            blamed, need = ALSO_BLAMED[rel]
        head = prefix + blamed + ":"
        assert msg.startswith(head), f"error does not name {head!r}: {msg[:300]!r}"
        m = re.match(r"(\d+): \S", msg[len(head) :])
        assert m, f"error has no line and fault: {msg[:300]!r}"
        assert 1 <= int(m.group(1)) <= files[blamed].count("\n") + 1, msg[:300]
        assert need in msg, msg[:300]


def test_base_and_round_trip_load() -> None:
    """The trimmed base loads, and so does every shipped file after a trip through dumps."""
    load_files(BASE)
    for rel in KINDS:
        doc = tomllib.loads(BASE[rel])
        assert tomllib.loads(dumps(doc)) == doc
        load_files({**BASE, rel: dumps(doc)})


# --- (a) structural mutations ------------------------------------------------------------


def _leaves(node: object) -> Iterator[object]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    else:
        yield node


def _paths(node: object, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _at(doc: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


KNOWN_KEYS = sorted({
    "policy", "version", "notice", "context_words", "context_chars", "url", "kind", "value",
    "category", "why", "engine", "name", "hosts", "paths", "params", "rule", "action", "id",
    "serial", "with_interface", "accounts", "profile", "title", "sensors", "categories",
    "url_categories", "full_browsing_log", "assign", "account", "group", "default_profile",
    "incidents", "group_window_minutes", "silent_agent_minutes", "severity", "min_score",
    "escalation", "within_minutes", "raise_by", "exemption", "start", "end", "reason",
    "approver", "terms", "sites",
})  # fmt: skip
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8))
WEIRD_STRINGS = st.sampled_from([
    "", " ", "\t", "\n", "é", "ß", "İ", "ﬁ", "💥", "\u200b", "\u2028", "\ufeff", "\x00", "\x7f",
    "x" * 5000, "kill " * 2000, "*", "*:*", "ks1", "ks2", "staff", "domain", "prefix",
    "pattern", "allow", "block", "reject", "word", "none", "keyboard", "browser", "usb",
    "grooming", "illegal", "(", "[", "a{99999999999}", "a{4294967296}", "(" * 1200 + ")" * 1200,
    "(?P<a>x)(?P=b)", "\\", '"', "'''", "0951:1666", "zzzz:1666", "08:06:50", "08:06",
    "http://", "HTTPS://Example.COM/a", "google.*", "-bad-.com", "a" * 64, "...",
])  # fmt: skip
HUGE_INTS = st.sampled_from([
    0, -1, 1, 4, 5, 6, 20, 21, 300, 301, 100_000, 100_001, 2**31, 2**63 - 1, 2**63,
    -(2**63), -(2**63) - 1, 2**64, 10**30, -(10**30),
])  # fmt: skip
RAW = st.sampled_from([
    Raw("9" * 5000), Raw("-" + "9" * 4400), Raw("0x" + "f" * 5000), Raw("0o7" + "7" * 6000),
    Raw("[" * 3000 + "]" * 3000), Raw("{a = " * 2000 + "1" + "}" * 2000),
    Raw("1e99999"), Raw("-inf"), Raw("nan"), Raw("0001-01-01T00:00:00+23:59"),
    Raw("9999-12-31T23:59:59-23:59"), Raw("1979-05-27T07:32:00"), Raw("07:32:00"),
])  # fmt: skip
ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=23, minutes=59)),
                         timezone(-timedelta(hours=23, minutes=59)),
                         timezone(timedelta(hours=1))])  # fmt: skip
SCALARS = st.one_of(
    st.integers(),
    HUGE_INTS,
    st.booleans(),
    WEIRD_STRINGS,
    st.text(max_size=20),
    st.floats(),
    st.dates(),
    st.datetimes(timezones=ZONES),
    st.times(),
    RAW,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)


def _retype(v: object) -> list[object]:
    """The same value as other TOML types: str<->int<->list<->table<->bool."""
    out: list[object] = [[v], {"value": v}, True, 0, "" if v == "" else "x"]
    if isinstance(v, str):
        number = int(v) if v.isascii() and v.isdigit() and len(v) < 100 else -len(v)
        out += [len(v), list(v[:3]), v == "", number]
    elif isinstance(v, bool):
        out += [int(v), str(v).lower(), [v]]
    elif isinstance(v, int | float):
        out += [str(v)[:50], -v, v * 10**20, bool(v)]
    elif isinstance(v, list):
        out += [v[0] if v else "", {str(i): x for i, x in enumerate(v)}, len(v), []]
    elif isinstance(v, dict):
        out += [list(v.values()), [v, v], str(sorted(v))]
    return out


def _representatives(doc: dict[str, Any]) -> dict[str, Any]:
    """The file with each array of tables cut to the first entry of each shape (its keys and
    its kind or action): urls.toml keeps one domain, one prefix and one pattern rule, so a
    random path lands on each often; the rest are more of the same."""
    out = dict(doc)
    for key, value in doc.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            shapes: dict[tuple[object, ...], dict[str, Any]] = {}
            for v in value:
                shapes.setdefault((*sorted(v), v.get("kind"), v.get("action")), v)
            out[key] = list(shapes.values())
    return copy.deepcopy(out)


OPS = ("replace", "retype", "delete", "add_key", "empty", "duplicate", "plausible", "raw",
       "weird")  # fmt: skip


def _mutate(data: st.DataObject, doc: dict[str, Any], pool: list[object]) -> None:
    op = data.draw(st.sampled_from(OPS), label="op")
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p]), label="path")
    parent, last = _at(doc, path[:-1]), path[-1]
    node = parent[last]
    if op == "replace":
        parent[last] = data.draw(VALUES, label="value")
    elif op == "retype":
        parent[last] = data.draw(st.sampled_from(_retype(node)), label="as")
    elif op == "plausible" and pool:  # a value from elsewhere in the file: goes deeper
        parent[last] = data.draw(st.sampled_from(pool), label="from file")
    elif op == "raw":
        parent[last] = data.draw(RAW, label="raw")
    elif op == "weird":
        parent[last] = data.draw(WEIRD_STRINGS | HUGE_INTS, label="weird")
    elif op == "delete":
        del parent[last]
    elif op == "add_key":
        target = node if isinstance(node, dict) else parent
        if isinstance(target, dict):
            target[data.draw(KEYS, label="key")] = data.draw(VALUES, label="value")
    elif op == "empty" and isinstance(node, list | dict):
        node.clear()
    elif op == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(node))


@FUZZ
@given(rel=st.sampled_from(KINDS), data=st.data())
def test_fuzz_mutated_policy_files(rel: str, data: st.DataObject) -> None:
    doc = tomllib.loads(BASE[rel])
    pool = [v for v in _leaves(doc) if not isinstance(v, dict | list)]
    if data.draw(st.booleans(), label="representatives only"):
        doc = _representatives(doc)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        if not any(True for p in _paths(doc) if p):
            break
        _mutate(data, doc, pool)
    check({**BASE, rel: dumps(doc)}, rel)


def _nasty(v: object) -> tuple[object, ...]:
    """What the sweep tries besides retyping: a huge int anywhere, edge ints for ints,
    odd strings for strings."""
    extra: tuple[object, ...] = (Raw("0x" + "f" * 5000),)
    if isinstance(v, int) and not isinstance(v, bool):
        extra += (2**63, -(2**63) - 1, 2**63 - 1)
    if isinstance(v, str):
        extra += ("", "\u2028", "a{4294967296}", "(" * 1200 + ")" * 1200)
    return extra


@pytest.mark.parametrize("rel", KINDS)
def test_each_kind_survives_every_mutation_op(rel: str) -> None:
    """Deterministic sweep over one entry of each shape: every value retyped, replaced by
    something nasty, and deleted."""
    doc = _representatives(tomllib.loads(BASE[rel]))
    # past the first item, a list of strings (categories, hosts) is more of the same (each
    # load takes 0.5 s of CPU: the second items doubled this sweep, to 5 minutes of CI)
    for path in [p for p in _paths(doc) if p and all(
            not isinstance(i, int) or i < 1 for i in p[2:])]:  # fmt: skip
        for variant in (*_retype(_at(doc, path)), *_nasty(_at(doc, path))):
            mutated = copy.deepcopy(doc)
            _at(mutated, path[:-1])[path[-1]] = variant
            check({**BASE, rel: dumps(mutated)}, rel)
        mutated = copy.deepcopy(doc)
        del _at(mutated, path[:-1])[path[-1]]
        check({**BASE, rel: dumps(mutated)}, rel)


# --- (b) garbage -------------------------------------------------------------------------

TOML_BITS = st.lists(st.sampled_from([*'[]{}="\'.,#\n\r\t =0123456789abcxyz_-:TZ+e\\', "\n[[",
                                      "]]\n", '"""', "'''", "0x", "true", "inf"]),
                     max_size=80).map("".join)  # fmt: skip


SPLICE_NASTY = st.sampled_from(
    [
        "version = " + "9" * 5000,
        "zz = " + "[" * 2000,
        "version = 0x" + "f" * 5000,
        "9" * 5000,
        "[" * 2000,
    ]
)


@st.composite
def _spliced(draw: st.DrawFn, rel: str) -> str:
    """The shipped text with a few slices replaced by garbage (nasty lines at a line start,
    where they are parsed rather than lost in a string or comment)."""
    text = BASE[rel]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            at = text.rfind("\n", 0, at) + 1
            junk, cut = draw(SPLICE_NASTY) + "\n", 0
        else:
            junk = draw(st.one_of(TOML_BITS.map(lambda t: t[:8]), st.text(max_size=4)))
            cut = draw(st.integers(0, 12))
        text = text[:at] + junk + text[at + cut :]
    return text


@GARBAGE
@given(rel=st.sampled_from(KINDS), data=st.data())
def test_fuzz_garbage_policy_files(rel: str, data: st.DataObject) -> None:
    text = data.draw(st.one_of(
        st.text(max_size=300),
        TOML_BITS,
        _spliced(rel),
        _spliced(rel),
    ), label="text")  # fmt: skip
    check({**BASE, rel: text}, rel)


NASTY = [
    "a = " + "9" * 5000,
    "a = -" + "9" * 4400,
    "a = " + "[" * 3000 + "]" * 3000,
    "a = " + "{b = " * 2000 + "1" + "}" * 2000,
    "[[a]]\n" * 3000,
    "\ufeff[policy]\n",
    "\x00",
    "a = 1\r\nb = 2\r",
]


@pytest.mark.parametrize("rel", KINDS)
@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_nasty_text(rel: str, text: str) -> None:
    check({**BASE, rel: text}, rel)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("fuzz") / "lists"
    for rel, text in BASE.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    return dest


@BYTES
@given(rel=st.sampled_from(KINDS), raw=st.binary(max_size=200))
def test_fuzz_random_bytes_from_disk(folder: Path, rel: str, raw: bytes) -> None:
    path = folder / rel
    path.write_bytes(raw)
    try:
        files = read_folder(folder)
    except PolicyError as exc:
        assert str(exc).startswith(f"{path}:1: not UTF-8"), str(exc)
    else:
        check(files, rel, prefix=f"{folder}/")
    finally:
        path.write_text(BASE[rel])


def test_shipped_folder_still_loads_from_a_copy(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_DIR, tmp_path / "lists")
    load_policy(tmp_path / "lists")


# --- regressions: inputs the fuzzing found -----------------------------------------------

_POLICY = '[policy]\nversion = 1\nnotice = "n"\n'


@pytest.mark.parametrize(("rel", "text", "line", "fault"), [
    # tomllib's int() refuses >4300 decimal digits with a bare ValueError
    ("policy.toml", _POLICY + "context_words = " + "9" * 5000 + "\n", 4, "integer"),
    # tomllib recurses once per bracket: RecursionError
    ("usb.toml", "[[rule]]\nid = " + "[" * 3000 + "]" * 3000 + "\n", 2, "nested too deeply"),
    # hex has no digit limit; printing the value in "must be between" raised ValueError
    ("policy.toml", _POLICY + "context_words = 0x" + "f" * 5000 + "\n", 4, "out of range"),
    ("incidents.toml", "[incidents]\ngroup_window_minutes = 1\nsilent_agent_minutes = 1\n"
     "[[severity]]\ncategory = \"*\"\nmin_score = 0\nseverity = [0x" + "f" * 5000 + "]\n",
     7, "out of range"),
    # TOML integers are 64-bit and a parser must refuse bigger ones; tomllib does not
    ("policy.toml", "[policy]\nversion = 9223372036854775808\nnotice = \"n\"\n", 2,
     "out of range"),
    # re.compile raises OverflowError and RecursionError, not only re.error
    ("urls.toml", '[[url]]\nkind = "pattern"\nvalue = "a{4294967296}"\ncategory = "illegal"\n'
     'why = "w"\n', 3, "not a valid pattern"),
    ("urls.toml", '[[url]]\nkind = "pattern"\nvalue = "' + "(" * 1200 + ")" * 1200 + '"\n'
     'category = "illegal"\nwhy = "w"\n', 3, "not a valid pattern"),
    # a duplicate profile named the file but no line
    ("profiles.toml", '[[profile]]\nname = "ks2"\nsensors = ["usb"]\n\n'
     '[[profile]]\nname = "ks2"\nsensors = ["usb"]\n', 5, "duplicate profile 'ks2'"),
])  # fmt: skip
def test_found_faults_name_file_line_and_fault(rel: str, text: str, line: int,
                                               fault: str) -> None:  # fmt: skip
    with pytest.raises(PolicyError) as err:
        load_files({**BASE, rel: text}, prefix="lists/")
    msg = str(err.value)
    assert msg.startswith(f"lists/{rel}:{line}: "), msg[:300]
    assert fault in msg, msg[:300]
