"""The service loads and compiles its policy in a child process (agent/policy_child.py) and
keeps only the result: its own heap never holds the compile's temporaries, the matcher it
gets matches as one compiled in-process does, a signed bundle is still verified, and should
the child fail the service does the work itself."""

from __future__ import annotations

import logging
import pickle
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import policy_child
from agent.policy import ActivePolicy, PolicyHolder
from agent.policy_cache import PolicyCache
from agent.policy_slim import for_a_pc
from rules.bundle import BundleError, build_bundle
from rules.compile import Compiled
from rules.load import DEFAULT_DIR, load_files, load_policy, read_folder
from rules.match import match_text

pytestmark = pytest.mark.unit
TEXTS = ["they plan to assassinate the archduke", "send me a pic of you, nobody will know",
         "i want to kill myself", "we read about the water cycle"]  # fmt: skip


def test_compiling_in_the_service_peaks_at_what_it_keeps_not_at_the_compiles_peak(
    tmp_path: Path,
) -> None:
    holder = PolicyHolder(tmp_path / "policy.json", Ed25519PrivateKey.generate().public_key())
    active = holder.current()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        matcher = active.compiled("ks2")
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept, peak = kept - before, peak - before
    # In-process, the shipped lists peak at about 8 times what the matcher keeps (143 MB
    # for 17); from the child, the unpickled tables and the pickler's buffers.
    assert peak < 2.5 * kept, (peak, kept)
    assert match_text(matcher, TEXTS[2])


def test_a_matcher_from_the_child_matches_as_one_compiled_in_process(tmp_path: Path) -> None:
    files = {k: v for k, v in read_folder(DEFAULT_DIR).items() if k != "exemptions.toml"}
    now = datetime.now(UTC)
    files["exemptions.toml"] = (  # active now, so the child must judge it at the same time
        f'[[exemption]]\nid = "history"\ngroup = "ks2"\nterms = ["assassinate"]\n'
        f"start = {(now - timedelta(days=1)).date()}\nend = {(now + timedelta(days=2)).date()}\n"
        'reason = "Year 6 history."\napprover = "A. Example (DSL)"\n'
    )
    policy = load_files(files)
    here = Compiled(policy, "ks2", now)
    there = ActivePolicy(1, for_a_pc(policy), in_child=True).compiled("ks2", now)
    assert pickle.dumps(there.tables()) == pickle.dumps(here.tables())
    assert there.valid_until == here.valid_until
    for text in TEXTS:
        assert match_text(there, text) == match_text(here, text), text


def test_the_service_keeps_no_text_that_only_a_technician_reads(tmp_path: Path) -> None:
    kept = PolicyHolder(tmp_path / "policy.json", Ed25519PrivateKey.generate().public_key())
    policy, full = kept.current().policy, load_policy()
    terms = [t for c in policy.categories for t in c.terms] + [g.term for g in policy.guards]
    assert terms and not any(t.why or t.where or t.example for t in terms)
    assert policy.semantic is not None and full.semantic is not None
    assert not any(e.why or e.where for e in policy.semantic.exemplars)
    # What an alert names stays: the exemplar's id and its sentence.
    assert [(e.id, e.category, e.text) for e in policy.semantic.exemplars] == [
        (e.id, e.category, e.text) for e in full.semantic.exemplars]  # fmt: skip
    assert [u.why for u in policy.urls] == [u.why for u in full.urls]  # a block page shows it


def test_a_bundle_is_verified_in_the_child_and_a_forged_one_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    holder = PolicyHolder(tmp_path / "policy.json", key.public_key())
    data = build_bundle(DEFAULT_DIR, 7, key)
    assert holder.apply(data).version == 7
    assert (tmp_path / "policy.json").read_bytes() == data
    forged = build_bundle(DEFAULT_DIR, 8, Ed25519PrivateKey.generate())
    with pytest.raises(BundleError, match="signature does not verify"):
        holder.apply(forged)
    assert holder.version == 7
    again = PolicyHolder(tmp_path / "policy.json", key.public_key())  # the last good, re-read
    assert again.version == 7
    assert again.current().policy == holder.current().policy


def test_when_the_child_cannot_start_the_service_does_the_work_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(policy_child, "COMMAND", [str(tmp_path / "no-such-python")])
    caplog.set_level(logging.WARNING, logger="agent.policy_child")
    holder = PolicyHolder(tmp_path / "policy.json", Ed25519PrivateKey.generate().public_key())
    assert holder.version == 0
    assert match_text(holder.current().compiled("ks2"), TEXTS[2])
    failed = [r.getMessage() for r in caplog.records if "policy.child_failed" in r.getMessage()]
    assert any("step=shipped" in m for m in failed)
    assert any("step=compile" in m for m in failed)


def test_a_child_that_hangs_is_stopped_and_the_service_does_the_work_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(policy_child, "COMMAND", [sys.executable, "-c",
                                                  "import time; time.sleep(600)"])  # fmt: skip
    monkeypatch.setattr(policy_child, "TIMEOUT_S", 1.0)
    caplog.set_level(logging.WARNING, logger="agent.policy_child")
    holder = PolicyHolder(tmp_path / "policy.json", Ed25519PrivateKey.generate().public_key())
    assert holder.version == 0 and holder.current().policy.categories
    assert any("step=shipped" in r.getMessage() and "exit status -9" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_a_restarted_service_reads_its_policy_and_matcher_back_instead_of_making_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = Ed25519PrivateKey.generate()
    cache = PolicyCache(tmp_path / "kept")
    caplog.set_level(logging.INFO, logger="agent.policy")
    first = PolicyHolder(tmp_path / "policy.json", key.public_key(), cache=cache)
    compiled = first.current().compiled("ks2")
    assert "kept=no" in caplog.text
    assert sorted(p.suffix for p in cache.folder.iterdir()) == [".matcher", ".policy"]
    # The same lists signed into a collector's bundle are the same matcher.
    data = build_bundle(DEFAULT_DIR, 3, key)
    first.apply(data)
    assert first.current().source == PolicyHolder(tmp_path / "none.json", key.public_key(),
                                                  cache=cache).current().source  # fmt: skip
    caplog.clear()

    def no_child(request: tuple[object, ...], keep: Path | None = None) -> object:
        raise AssertionError(f"{request[0]} done again: what was kept was not used")

    monkeypatch.setattr(policy_child, "in_child", no_child)
    again = PolicyHolder(tmp_path / "policy.json", key.public_key(), cache=cache)  # a restart
    assert again.version == 3 and again.current().policy == first.current().policy
    kept = again.current().compiled("ks2")
    assert "policy.loaded step=last_good kept=yes" in caplog.text
    assert "policy.compiled version=3 profile=ks2" in caplog.text
    assert caplog.text.split("policy.compiled version=3 profile=ks2")[1].split("\n")[0].endswith(
        "kept=yes")  # fmt: skip
    for text in TEXTS:
        assert match_text(kept, text) == match_text(compiled, text), text
    # An edited policy.json is another file's name: verified afresh (and refused).
    monkeypatch.undo()
    (tmp_path / "policy.json").write_bytes(data.replace(b'"payload":"', b'"payload":"A'))
    edited = PolicyHolder(tmp_path / "policy.json", key.public_key(), cache=cache)
    assert edited.version == 0 and edited.load_error


def test_policy_json_replaced_while_it_loads_is_kept_under_the_name_of_what_was_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept policy is named by policy.json's bytes; the child must verify those same
    bytes, not read the file again: a valid bundle swapped in between would otherwise be
    kept under the first one's name, and read back for it at every later start."""
    key = Ed25519PrivateKey.generate()
    cache = PolicyCache(tmp_path / "kept")
    path = tmp_path / "policy.json"
    three, four = build_bundle(DEFAULT_DIR, 3, key), build_bundle(DEFAULT_DIR, 4, key)
    path.write_bytes(three)
    child = policy_child.in_child

    def swapped_first(request: tuple[object, ...], keep: Path | None = None) -> object:
        path.write_bytes(four)  # after the service read policy.json, before the child
        return child(request, keep)

    monkeypatch.setattr(policy_child, "in_child", swapped_first)
    holder = PolicyHolder(path, key.public_key(), cache=cache)
    assert holder.version == 3
    kept = cache.load(cache.policy("last_good", three, holder._raw_key))
    assert kept is not None and kept[0] == 3


def test_a_refused_policy_json_that_is_gone_before_it_is_set_aside_still_starts_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused file removed before the rename (a technician's cleanup, a second start) must
    not stop the service: it starts on what shipped and says the file was not kept."""
    path = tmp_path / "policy.json"
    path.write_bytes(b"{not a bundle")
    child = policy_child.in_child

    def removed_first(request: tuple[object, ...], keep: Path | None = None) -> object:
        if request[0] == "last_good":
            path.unlink()
        return child(request, keep)

    monkeypatch.setattr(policy_child, "in_child", removed_first)
    holder = PolicyHolder(path, Ed25519PrivateKey.generate().public_key())
    assert holder.version == 0 and holder.load_error is not None
    assert "not kept" in holder.load_error and not path.exists()


def test_a_matcher_prepared_in_a_child_is_kept_for_the_service_to_read_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``prepare`` makes a profile's matcher in a child that keeps it and answers nothing;
    ``kept`` then reads it back (kept=yes), never compiling or waiting, and it matches as one
    compiled here."""
    caplog.set_level(logging.INFO)
    cache = PolicyCache(tmp_path / "kept")
    active = PolicyHolder(tmp_path / "policy.json", Ed25519PrivateKey.generate().public_key(),
                          cache=cache).current()  # fmt: skip
    assert not list(cache.folder.glob("*.matcher"))
    assert active.prepare("staff") and len(list(cache.folder.glob("*.matcher"))) == 1
    assert "policy.compiled" not in caplog.text  # made aside, not read in yet
    assert active.prepare("staff") and active.ready("staff")  # (kept already: nothing done)
    matcher = active.kept("staff")
    assert matcher is not None and active.kept("staff") is matcher
    assert caplog.text.split("policy.compiled version=0 profile=staff")[1].split("\n")[0].endswith(
        "kept=yes")  # fmt: skip
    here = Compiled(active.policy, "staff", active.now())
    for text in TEXTS:
        assert match_text(matcher, text) == match_text(here, text), text
    nowhere = PolicyHolder(tmp_path / "policy.json", Ed25519PrivateKey.generate().public_key())
    assert not nowhere.current().prepare("staff")  # no cache: it cannot be kept aside
    assert not nowhere.current().ready("staff") and nowhere.current().kept("staff") is None
    other = PolicyHolder(tmp_path / "policy.json", Ed25519PrivateKey.generate().public_key(),
                         cache=cache).current()  # fmt: skip
    with other._lock:  # another thread compiling: not waited for
        assert not other.ready("staff") and other.kept("staff") is None
    assert other.ready("staff") and other.kept("staff") is not None
