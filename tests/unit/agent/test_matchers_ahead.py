"""A policy's keyboard matchers are made ahead (agent/matchers_ahead.py), in a real child that
keeps them on disk, so the first login after a new policy reads its matcher back rather than
waiting for a compile during which its keys are not captured."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from agent import policy_child
from agent.matchers_ahead import MatchersAhead, keyboard_profiles
from agent.policy import ActivePolicy
from agent.policy_cache import PolicyCache
from rules.load import DEFAULT_DIR, load_files, read_folder
from rules.match import match_text
from rules.schema import Policy

pytestmark = pytest.mark.unit
TEXT = "they plan to assassinate the archduke"


def small_policy(word: str = "assassinate", default: str = "ks2") -> Policy:
    """Three profiles, two of them capturing keys; one short list (a compile of a second)."""
    files = {k: v for k, v in read_folder(DEFAULT_DIR).items()
             if not k.startswith(("keywords/", "classes", "guards", "semantic", "screenshots",
                                  "exemptions"))}  # fmt: skip
    profile = '[[profile]]\nname = "{}"\nsensors = [{}]\ncategories = ["violence"]\n' \
              'url_categories = []\n'  # fmt: skip
    files.update({
        "classes.toml": "", "guards.toml": "", "urls.toml": "", "exemptions.toml": "",
        "incidents.toml": "[incidents]\ngroup_window_minutes = 30\nsilent_agent_minutes = 60\n",
        "keywords/violence.toml": '[category]\nname = "violence"\nthreshold = 6\nwindow = 12\n\n'
                                  f'[[term]]\npattern = "{word}~"\nweight = 6\n'
                                  f'why = "test"\nexample = "{word}"\n',
        "profiles.toml": f'default_profile = "{default}"\n'
                         + profile.format("staff", '"usb"') + profile.format("ks1", '"keyboard"')
                         + profile.format("ks2", '"keyboard", "usb"'),
    })  # fmt: skip
    return load_files(files)


def active(policy: Policy, cache: PolicyCache, version: int = 1) -> ActivePolicy:
    return ActivePolicy(version, policy, in_child=True, source=f"test-{version}", cache=cache)


def test_the_default_profile_goes_first_and_profiles_without_keys_are_not_made() -> None:
    assert keyboard_profiles(small_policy()) == ["ks2", "ks1"]
    assert keyboard_profiles(small_policy(default="ks1")) == ["ks1", "ks2"]
    assert keyboard_profiles(small_policy(default="staff")) == ["ks1", "ks2"]
    assert keyboard_profiles(small_policy(), limit=1) == ["ks2"]


def test_a_new_policys_matchers_are_kept_before_anyone_logs_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cache = PolicyCache(tmp_path / "kept")
    policy = active(small_policy(), cache)
    ahead = MatchersAhead(after_s=0)
    ahead.want(policy)
    assert ahead.join(120)
    assert policy.ready("ks1") and policy.ready("ks2")
    # ks1 and ks2 judge the same categories: one matcher serves both.
    assert len(list(cache.folder.glob("*.matcher"))) == 1
    made = [line.split("profile=")[1].split()[0] for line in caplog.messages
            if line.startswith("policy.made_ahead version=1")]  # fmt: skip
    assert made == ["ks2", "ks1"]  # the default first; none for staff (no keys)
    assert "policy.made_ahead version=1 profile=ks2 kept=yes" in caplog.text
    assert "policy.compiled" not in caplog.text  # made in the child: nothing read in yet
    # The login: read back, never compiled here (in_child would be the only way to compile).
    caplog.clear()
    matcher = policy.kept("ks2")
    assert matcher is not None and "kept=yes" in caplog.text
    assert [a.category for a in match_text(matcher, TEXT)] == ["violence"]


def test_a_newer_policy_arriving_meanwhile_is_the_one_made(tmp_path: Path) -> None:
    cache = PolicyCache(tmp_path / "kept")
    old, new = active(small_policy(), cache, 1), active(small_policy("obliterate"), cache, 2)
    ahead = MatchersAhead(after_s=3600)  # (not started on before the newer one comes)
    ahead.want(old)
    ahead._after_s = 0
    ahead.want(new)  # wakes the worker: the newer policy, due now, replaces the older one
    assert ahead.join(120)
    assert new.ready("ks1") and new.ready("ks2")
    assert not old.ready("ks1") and not old.ready("ks2")
    matcher = new.kept("ks1")
    assert matcher is not None and match_text(matcher, "we will obliterate them")


def test_a_stopped_service_starts_no_compile(tmp_path: Path) -> None:
    cache = PolicyCache(tmp_path / "kept")
    ahead = MatchersAhead(after_s=3600)
    ahead.want(active(small_policy(), cache))
    ahead.stop()  # wakes the waiting worker, which ends without compiling
    assert ahead.join(10)
    assert not list(cache.folder.glob("*.matcher"))
    ahead.want(active(small_policy(), cache))  # after stop: nothing more starts
    assert ahead.join(10) and not list(cache.folder.glob("*.matcher"))


def test_a_compile_made_ahead_runs_at_a_lower_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real child, started as the service starts it, reports the priority it ran at."""
    if not hasattr(os, "nice"):
        pytest.skip("no process priorities to lower on this platform")
    seen = tmp_path / "nice"
    script = ("import os, sys; from agent import policy_child as c; status = c.main(); "
              f"open({str(seen)!r}, 'w').write(str(os.nice(0))); sys.exit(status)")  # fmt: skip
    monkeypatch.setattr(policy_child, "COMMAND", [sys.executable, "-c", script])
    cache = PolicyCache(tmp_path / "kept")
    policy = active(small_policy(), cache)
    base = os.nice(0)
    assert policy.prepare("ks1", low=True) and int(seen.read_text()) == min(base + 10, 19)
    other = active(small_policy(), cache, 2)  # (another source: not kept yet)
    assert other.prepare("ks2") and int(seen.read_text()) == base  # a login's: not lowered


def test_a_compile_made_ahead_holds_no_lock_a_login_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a child makes a matcher ahead (at low priority: it can take minutes on a busy
    PC), a login's lookups are not held up by it, and a second ``prepare`` of the same file
    waits for that child instead of starting another."""
    import threading

    started, release, calls = threading.Event(), threading.Event(), []
    real = policy_child.kept_only

    def slow_child(request: tuple[object, ...], keep: Path, low: bool = False) -> bool:
        calls.append(low)
        started.set()
        assert release.wait(60)
        return real(request, keep, low)  # the real child, once let go

    monkeypatch.setattr(policy_child, "kept_only", slow_child)
    policy = active(small_policy(), PolicyCache(tmp_path / "kept"))
    results: list[bool] = []
    ahead = threading.Thread(target=lambda: results.append(policy.prepare("ks2", low=True)))
    ahead.start()
    assert started.wait(60)
    assert policy._lock.acquire(blocking=False)  # what compiled(), ready() and kept() take
    policy._lock.release()
    assert not policy.ready("ks2")  # not there yet: the session's old matcher goes on
    second = threading.Thread(target=lambda: results.append(policy.prepare("ks2")))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the child in hand
    release.set()
    ahead.join(120)
    second.join(120)
    assert results == [True, True] and calls == [True]  # one child for the two
    assert policy.ready("ks2")
