"""Loaded policies and compiled matchers kept on disk (agent/policy_cache.py): read back only
when whole, owned by the service and made of their own classes; anything else is removed,
reported, and costs a load or a compile, never a crash or a planted object."""

from __future__ import annotations

import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any

import pytest

from agent import policy_cache
from agent.policy_cache import KEEP, PolicyCache
from rules.compile import Compiled
from rules.entries import Entry
from rules.load import load_files
from rules.match import match_text
from tests.unit.rules.test_pattern import _policy_files

pytestmark = pytest.mark.unit
TEXTS = ["send me a pic of you", "im gonna bring a knife to school", "we read a book"]


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return Compiled(load_files(_policy_files()), "ks2")


def _kept(tmp_path: Path, compiled: Compiled) -> tuple[PolicyCache, Path]:
    cache = PolicyCache(tmp_path / "matchers")
    path = cache.matcher("files", ("categories", ()))
    policy_cache.write(path, pickle.dumps(compiled.tables(), pickle.HIGHEST_PROTOCOL))
    return cache, path


def _keep(path: Path, value: object) -> None:
    policy_cache.write(path, pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


def _planted(path: Path, payload: bytes) -> None:
    """A file with a right header: only what it unpickles into can give it away."""
    policy_cache.write(path, payload)


def test_kept_tables_are_read_back_and_match_as_the_compiled_ones(
    tmp_path: Path, compiled: Compiled
) -> None:
    cache, path = _kept(tmp_path, compiled)
    tables = cache.load(path)
    assert tables is not None
    again = Compiled(compiled.policy, "ks2", build=lambda *_: tables)
    for text in TEXTS:
        assert match_text(again, text) == match_text(compiled, text)
    assert any(match_text(again, t) for t in TEXTS)  # (the texts do test something)
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("damage", ["flipped byte", "cut short", "not a matcher file"])
def test_a_damaged_file_is_removed_and_reported(
    tmp_path: Path, compiled: Compiled, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache, path = _kept(tmp_path, compiled)
    data = bytearray(path.read_bytes())
    if damage == "flipped byte":
        data[len(data) // 2] ^= 0x01
    elif damage == "cut short":
        del data[len(data) // 2 :]
    else:
        data[:4] = b"PK\x03\x04"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="agent.policy_cache"):
        assert cache.load(path) is None
    assert not path.exists()
    assert "policy.cache_refused" in caplog.text


class _Calls:
    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.fn, self.args


@pytest.mark.parametrize("kind", ["matcher", "policy"])
@pytest.mark.parametrize("call", ["os.system", "our own file writer"])
def test_a_planted_pickle_cannot_call_anything(
    tmp_path: Path, call: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "ran"
    if call == "os.system":
        payload = pickle.dumps({"automaton": _Calls(os.system, f"touch {marker}")})
    else:
        from rules import bundle

        payload = pickle.dumps({"x": _Calls(bundle.save_last_good, marker, None)})
    cache = PolicyCache(tmp_path)
    path = cache.matcher("files", ()) if kind == "matcher" else cache.policy("shipped", "x")
    _planted(path, payload)
    with caplog.at_level(logging.WARNING, logger="agent.policy_cache"):
        assert cache.load(path) is None
    assert not marker.exists()
    assert "which nothing kept here holds" in caplog.text
    assert not path.exists()


def test_a_file_copied_under_another_name_is_refused(tmp_path: Path, compiled: Compiled) -> None:
    """Another profile's matcher, or the shipped policy under the school's policy's name."""
    cache, path = _kept(tmp_path, compiled)
    other = cache.matcher("files", (("grooming",), ()))
    other.write_bytes(path.read_bytes())
    other.chmod(0o600)
    assert cache.load(other) is None and not other.exists()
    assert cache.load(path) is not None


def test_a_file_others_may_write_is_refused(tmp_path: Path, compiled: Compiled) -> None:
    cache, path = _kept(tmp_path, compiled)
    path.chmod(0o666)
    assert cache.load(path) is None
    assert not path.exists()


def test_each_input_names_its_own_file(tmp_path: Path) -> None:
    cache = PolicyCache(tmp_path)
    base = cache.matcher("files-a", (("grooming",), ()))
    assert cache.matcher("files-a", (("grooming",), ())) == base
    assert cache.matcher("files-b", (("grooming",), ())) != base  # other lists
    assert cache.matcher("files-a", (("grooming", "violence"), ())) != base  # other categories
    assert cache.matcher("files-a", (("grooming",), ("history",))) != base  # an exemption on
    assert base.parent == tmp_path and base.suffix == ".matcher"
    kept = cache.policy("last_good", b"bundle", b"key")
    assert kept.suffix == ".policy" and kept != cache.policy("last_good", b"bundle", b"other")
    assert kept != cache.policy("last_good", b"bundle!", b"key")  # an edited policy.json
    assert cache.policy("last_good", b"ab", b"c") != cache.policy("last_good", b"a", b"bc")


def test_a_kept_policy_is_read_back_whole(tmp_path: Path) -> None:
    from agent.policy_slim import for_a_pc
    from rules.load import load_policy

    policy = for_a_pc(load_policy())
    cache = PolicyCache(tmp_path)
    path = cache.policy("shipped", "digest")
    _keep(path, (0, policy, "digest"))
    assert cache.load(path) == (0, policy, "digest")
    # A matcher's tables under a policy's name: refused (a policy's classes only).
    _keep(path, {"x": Entry(0, 1, "word", b"", "x")})
    assert cache.load(path) is None


def test_a_file_that_cannot_be_written_costs_only_the_next_compile(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING, logger="agent.policy_cache"):
        policy_cache.write(blocked / "x.matcher", b"tables")
    assert "policy.cache_not_written" in caplog.text
    assert PolicyCache(blocked).load(blocked / "x.matcher") is None


def test_the_folder_keeps_only_the_newest_files(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.matcher" for i in range(KEEP + 3)]
    for i, path in enumerate(paths):
        policy_cache.write(path, b"tables")
        os.utime(path, (time.time() - 100 + i, time.time() - 100 + i))
    policy_cache.write(paths[-1], b"tables")  # the newest again: prunes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths[-KEEP:])
