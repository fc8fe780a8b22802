"""Import of e2guardian weighted phrase lists: a hand-written fixture always, and Debian's
real lists when E2GUARDIAN_LISTS points at an extracted package (see docs/rules.md)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.compile import Compiled
from rules.e2guardian import decode, import_lists, parse_line, to_toml
from rules.load import load_policy
from rules.match import Stream, match_text
from rules.schema import PolicyError

pytestmark = pytest.mark.unit
# Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])  # fmt: skip

MAIN = """# weighted phrase list
#listcategory: "Test"
.Include<{root}/lists/phraselists/test/weighted>
.Include</etc/e2guardian/lists/phraselists/good/weighted>
#.Include</etc/e2guardian/lists/phraselists/commented/weighted>
"""
TEST = """\ufeff#listcategory: "Pornography"
< porn ><40>
<xxx><20> #substring
< bbw >,< xxx ><30>
<slut ><10%>
<broken<5>
"""
GOOD = "#listcategory: \"Good\"\n< medical ><-30>\n< caf\xe9 ><-5>\n"


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    root = tmp_path / "e2g"
    (root / "lists/phraselists/test").mkdir(parents=True)
    (root / "lists/phraselists/good").mkdir(parents=True)
    (root / "lists/weightedphraselist").write_text(MAIN.format(root=root))
    (root / "lists/phraselists/test/weighted").write_text(TEST, encoding="utf-8")
    # Latin-1, as many of the real files are
    (root / "lists/phraselists/good/weighted").write_bytes(GOOD.encode("latin-1"))
    return root / "lists/weightedphraselist"


def test_fixture_import(lists: Path) -> None:
    result = import_lists(lists, limit=50)
    got = {(e.phrases, e.weight) for e in result.entries}
    assert ((("porn", "word"),), 40) in got
    assert ((("xxx", "none"),), 20) in got
    assert ((("bbw", "word"), ("xxx", "word")), 30) in got
    assert ((("slut", "end"),), 5) in got  # 10% of 50
    assert ((("medical", "word"),), -30) in got
    assert ((("café", "word"),), -5) in got  # Latin-1 decoded
    assert any("broken" not in w and ":6:" in w for w in result.warnings)
    assert result.files == 3


def test_parse_line_forms() -> None:
    assert parse_line("< a >,<b ><-7>") == ((("a", "word"), ("b", "end")), -7, False)
    assert parse_line("<a><10%>") == ((("a", "none"),), 10, True)
    assert parse_line("<a>") is None
    assert parse_line("junk") is None


def test_decode_encodings() -> None:
    assert decode("привет".encode("koi8-r"), "russian-koi8-r/weighted") == "привет"
    assert decode("привет".encode("cp1251"), "russian-1251/weighted") == "привет"
    assert decode(b"\xef\xbb\xbf<a><1>") == "<a><1>"


def test_missing_source_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError):
        import_lists(tmp_path / "nope")


def test_imported_list_loads_and_matches(lists: Path, rules_dir: Path) -> None:
    (rules_dir / "keywords/e2guardian.toml").write_text(to_toml(import_lists(lists)))
    prof = rules_dir / "profiles.toml"
    prof.write_text(prof.read_text().replace('"gambling", "illegal"]\nurl', '"gambling", '
                                             '"illegal", "e2guardian"]\nurl', 1))  # fmt: skip
    compiled = Compiled(load_policy(rules_dir), "ks1")
    cats = {a.category for a in match_text(compiled, "free p0rn and xxx videos")}
    assert "e2guardian" in cats
    cats = {a.category for a in match_text(compiled, "the medical porn study")}
    assert "e2guardian" not in cats  # -30 keeps it under 50


@PROPERTY
@given(st.text(max_size=200))
def test_fuzz_importer_only_warns(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fz") / "weighted"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = import_lists(path)
    to_toml(result)


REAL = os.environ.get("E2GUARDIAN_LISTS")


@pytest.mark.skipif(not REAL and os.environ.get("CI") != "true",
                    reason="set E2GUARDIAN_LISTS to an extracted /etc/e2guardian")  # fmt: skip
def test_real_debian_lists(tmp_path: Path, rules_dir: Path) -> None:
    assert REAL, "CI must set E2GUARDIAN_LISTS (see docs/rules.md)"
    lists = Path(REAL) / "lists"
    main = import_lists(lists / "weightedphraselist")
    assert main.files > 20 and len(main.entries) > 5000
    assert any(e.weight < 0 for e in main.entries)
    assert any(len(e.phrases) > 1 for e in main.entries)
    every = [import_lists(f) for f in sorted((lists / "phraselists").rglob("weighted*"))]
    assert sum(len(r.entries) for r in every) > 10000  # all languages, included or not
    out = tmp_path / "e2g.toml"
    out.write_text(to_toml(main))
    shutil.copy(out, rules_dir / "keywords/e2guardian.toml")
    prof = rules_dir / "profiles.toml"
    old, new = '"illegal"]\nurl', '"illegal", "e2guardian"]\nurl'
    prof.write_text(prof.read_text().replace(old, new, 1))
    compiled = Compiled(load_policy(rules_dir), "ks1")
    assert {"e2guardian"} <= {a.category for a in match_text(compiled, "hardcore xxx porn sex")}
    # The bulk path equals the stream on the imported phrases (every boundary mode,
    # combinations, negative weights, many scripts).
    cats = compiled.categories
    phrases = sorted({t.phrase for c in cats for t in c.terms}
                     | {p for c in cats for k in c.combos for p in k.terms})  # fmt: skip
    rng = random.Random(7)
    for _ in range(300):
        words = [rng.choice(phrases) if rng.random() < 0.5 else rng.choice(["the", "a", "as"])
                 for _ in range(rng.randint(1, 20))]  # fmt: skip
        text = "".join(w + rng.choice([" ", "  ", ", ", ".", "", "'", "\u200b"]) for w in words)
        stream = Stream(compiled)
        stream.feed_text(text)
        stream.finish()
        assert match_text(compiled, text) == list(stream.standing), text
