"""The loader: the shipped policy loads, and every fault names file, line and fault."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.load import DEFAULT_DIR, load_files, load_policy, read_folder
from rules.schema import CATEGORIES, Policy, PolicyError
from tests.unit.rules.test_fuzz_policy import BASE, small_policy

pytestmark = pytest.mark.unit
# Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])  # fmt: skip


def test_shipped_policy_has_every_category_and_profile(policy: Policy) -> None:
    assert {c.name for c in policy.categories} == set(CATEGORIES)
    assert {p.name for p in policy.profiles} == {"ks1", "ks2", "staff"}
    staff = policy.profile("staff")
    assert "keyboard" not in staff.sensors
    assert set(staff.url_categories) <= {"illegal", "pornography", "extremism"}
    for cat in policy.categories:
        assert len(cat.terms) + len(cat.combos) >= 130, cat.name
        assert all(t.why.strip() and t.weight for t in cat.terms)
    entries = sum(len(c.terms) + len(c.combos) for c in policy.categories)
    assert entries >= 1500  # the lists a school buys: see docs/detection.md


def _break(folder: Path, rel: str, old: str, new: str) -> None:
    path = folder / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _line_of(folder: Path, rel: str, needle: str) -> int:
    lines = (folder / rel).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


# A keyword file of the test's own, so the faults do not depend on what the shipped lists say.
KEYWORDS = "keywords/zz_test.toml"
TEST_KEYWORDS = """[category]
name = "zz_test"
threshold = 8
window = 12

[[term]]
phrase = "our little secret"
weight = 10
why = "secrecy"

[[term]]
pattern = "send [me] {photo}"
weight = 6
why = "a pattern"

[[term]]
phrase = "weed"
weight = 5
why = "drugs"
"""
BREAKAGES = [
    (KEYWORDS, "weight = 10", 'weight = "x"', 'weight = "x"',
     "weight must be an integer, got 'x'"),
    (KEYWORDS, 'phrase = "our little secret"', 'phrase = "0ur l1ttle s3cret"\n'
     'weight = 1\nwhy = "dup"\n[[term]]\nphrase = "our little secret"',
     'phrase = "our little secret"', "duplicate phrase"),
    (KEYWORDS, "weight = 5", "wieght = 5", "wieght = 5", "unknown key 'wieght'"),
    (KEYWORDS, 'phrase = "weed"', 'phrase = "..."', 'phrase = "..."',
     "has no letters or digits"),
    (KEYWORDS, "threshold = 8", "threshold = 0", "threshold = 0",
     "threshold must be between 1"),
    (KEYWORDS, 'pattern = "send [me] {photo}"', 'pattern = "send [me {photo}"',
     'pattern = "send [me {photo}"', "is not closed"),
    (KEYWORDS, 'pattern = "send [me] {photo}"', 'pattern = "send {fotos}"',
     'pattern = "send {fotos}"', "unknown word class {fotos}"),
    (KEYWORDS, 'phrase = "weed"', 'phrase = "weed"\npattern = "weed"', 'pattern = "weed"',
     "give exactly one of phrase"),
    ("usb.toml", 'id = "0951:1666"', 'id = "merilock"', 'id = "merilock"', "id must be VVVV:PPPP"),
    ("urls.toml", 'value = "(?i)pro[-_]?ana|thinspo"', 'value = "(unclosed"', 'value = "(unclosed"',
     "not a valid pattern"),
    ("profiles.toml", '"gambling", "illegal"]', '"gambling", "ilegal"]', '"ilegal"]',
     "unknown category 'ilegal'"),
    ("exemptions.toml", "end = 2025-02-14", "end = 2024-02-14", "end = 2024-02-14",
     "end must be after start"),
    ("exemptions.toml", 'group = "ks2"', 'group = "year9"', 'group = "year9"', "is not a profile"),
    ("incidents.toml", "severity = 5", "severity = 9", "severity = 9", "between 1 and 5"),
    (KEYWORDS, "weight = 6", "weight = = 6", "weight = = 6", "Invalid value"),
]  # fmt: skip


@pytest.fixture
def small_rules_dir(tmp_path: Path) -> Path:
    """The shipped folder trimmed to a few entries per list, with the test's own keywords:
    each load takes a tenth of the shipped lists' time, and the faults are all in files
    kept whole."""
    dest = tmp_path / "lists"
    for rel, text in small_policy({KEYWORDS: TEST_KEYWORDS}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    return dest


@pytest.mark.parametrize(("rel", "old", "new", "at", "fault"), BREAKAGES)
def test_faults_name_file_line_and_fault(
    small_rules_dir: Path, rel: str, old: str, new: str, at: str, fault: str
) -> None:
    rules_dir = small_rules_dir
    load_policy(rules_dir)  # loads before it is broken
    _break(rules_dir, rel, old, new)
    with pytest.raises(PolicyError) as err:
        load_policy(rules_dir)
    msg = str(err.value)
    line = _line_of(rules_dir, rel, at)
    assert msg.startswith(f"{rules_dir}/{rel}:"), msg
    if "duplicate" not in fault:
        assert msg.startswith(f"{rules_dir}/{rel}:{line}:"), msg
    assert fault in msg


def test_missing_file_is_named(rules_dir: Path) -> None:
    (rules_dir / "usb.toml").unlink()
    with pytest.raises(PolicyError, match=r"usb\.toml: missing"):
        load_policy(rules_dir)


def test_not_utf8_is_named(rules_dir: Path) -> None:
    (rules_dir / "urls.toml").write_bytes(b"\xff\xfe[[url]]")
    with pytest.raises(PolicyError, match=r"urls\.toml:1: not UTF-8"):
        load_policy(rules_dir)


def _loads_or_names_fuzz_file(text: str) -> None:
    """Loads, or PolicyError ``keywords/fuzz.toml:<line in the file>: <fault>``. Beside
    the shipped files with three entries per list (test_fuzz_policy's BASE): loading the
    whole lists 300 times was two minutes of CI, and the fuzz file is checked the same."""
    files = {**BASE, "keywords/fuzz.toml": text}
    try:
        load_files(files)
    except PolicyError as exc:
        msg = str(exc)
        m = re.match(r"keywords/fuzz\.toml:(\d+): \S", msg)
        assert m, msg
        assert 1 <= int(m.group(1)) <= text.count("\n") + 1, msg


@PROPERTY
@given(st.text(max_size=300))
def test_fuzz_any_keyword_file_gives_policy_error_or_loads(text: str) -> None:
    _loads_or_names_fuzz_file(text)


TOML_BITS = st.sampled_from([
    "[category]\n", 'name = "x"\n', "threshold = 5\n", "window = 3\n", "[[term]]\n",
    'phrase = "kill"\n', "weight = 3\n", 'why = "w"\n', 'boundary = "none"\n', "[[combo]]\n",
    'all = ["a", "b"]\n', "weight = -2\n", 'boundary = ["word"]\n', "enabled = 1\n", "x = 1\n",
    "[[term]]\nphrase = 3\n", 'title = "t"\n', "all = []\n", "window = 0\n",
])  # fmt: skip


@PROPERTY
@given(st.lists(TOML_BITS, max_size=14))
def test_fuzz_structured_keyword_files(bits: list[str]) -> None:
    _loads_or_names_fuzz_file("".join(bits))


def test_line_numbers_count_toml_lines_not_unicode_line_breaks() -> None:
    files = read_folder(DEFAULT_DIR)
    text = "# a comment with a \u2028 line separator\n" + files["policy.toml"]
    line = text.split("\n").index("context_words = 8") + 1
    files["policy.toml"] = text.replace("context_words = 8", "context_words = -1")
    with pytest.raises(PolicyError, match=rf"policy\.toml:{line}: "):
        load_files(files)


def test_an_escalation_sequence_names_two_different_sources() -> None:
    files = read_folder(DEFAULT_DIR)
    files["incidents.toml"] = files["incidents.toml"].replace(
        'sequence = ["url", "search"]', 'sequence = ["url", "url"]'
    )
    with pytest.raises(PolicyError, match=r"incidents\.toml:\d+: sequence names two different"):
        load_files(files)
