"""Account -> profile: the policy's [[assign]] entries, local groups, the default."""

from __future__ import annotations

import os
import pwd

import pytest

from agent.profiles import ProfileCache, choose, local_groups, profile_for
from rules.load import DEFAULT_DIR, load_files, load_policy, read_folder
from rules.schema import PolicyError

pytestmark = pytest.mark.unit


def with_default(name: str) -> dict[str, str]:
    files = read_folder(DEFAULT_DIR)
    text = files["profiles.toml"]
    assert 'default_profile = "ks2"' in text
    files["profiles.toml"] = text.replace('default_profile = "ks2"', f"default_profile = {name!r}")
    return files


def test_shipped_mapping_staff_group_ks1_group_and_the_default() -> None:
    policy = load_policy()
    assert choose(policy, "mrs.jones", {"users", "safeguard-staff"}).name == "staff"
    assert choose(policy, "amy", {"safeguard-ks1"}).name == "ks1"
    assert choose(policy, "sam", set()).name == "ks2"  # unsorted: still protected
    assert "keyboard" not in choose(policy, "mrs.jones", {"safeguard-staff"}).sensors


def test_an_account_entry_wins_over_groups_and_order_of_groups_counts() -> None:
    policy = load_files(with_default("ks1"))
    assert choose(policy, "nobody-sorted", set()).name == "ks1"
    files = read_folder(DEFAULT_DIR)
    files["profiles.toml"] += '\n[[assign]]\naccount = "Head"\nprofile = "ks2"\n'
    policy = load_files(files)
    assert choose(policy, "head", {"safeguard-staff"}).name == "ks2"  # case-insensitive
    assert choose(policy, "x", {"safeguard-ks2", "safeguard-staff"}).name == "staff"


@pytest.mark.parametrize(
    ("extra", "fault"),
    [
        ('\n[[assign]]\ngroup = "g"\nprofile = "nope"\n', "no profile 'nope'"),
        ('\n[[assign]]\nprofile = "ks1"\n', "exactly one of account or group"),
        ('\n[[assign]]\naccount = "a"\ngroup = "g"\nprofile = "ks1"\n', "exactly one"),
        ('\n[[assign]]\nuser = "a"\nprofile = "ks1"\n', "unknown key 'user'"),
    ],
)
def test_bad_assignments_name_the_file_and_line(extra: str, fault: str) -> None:
    files = read_folder(DEFAULT_DIR)
    files["profiles.toml"] += extra
    with pytest.raises(PolicyError, match=r"profiles\.toml:\d+: .*" + fault.split("'")[0]):
        load_files(files)


def test_a_default_profile_that_does_not_exist_is_refused() -> None:
    with pytest.raises(PolicyError, match="default_profile"):
        load_files(with_default("ks9"))


def test_local_groups_read_the_os() -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    assert local_groups(me)  # at least the primary group
    assert local_groups("no-such-account-here") == frozenset()
    assert profile_for(load_policy(), "no-such-account-here").name == "ks2"


def test_cache_is_per_policy_object() -> None:
    cache, policy = ProfileCache(), load_policy()
    first = cache.profile_for(policy, "no-such-account-here")
    assert cache.profile_for(policy, "no-such-account-here") is first
    assert cache.profile_for(load_policy(), "no-such-account-here").name == first.name
