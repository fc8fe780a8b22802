"""`safeguard-collector roster profiles on|off` on a real data folder (no collector running):
it says what PCs will receive, publishes the policy with the roster's logins (and without them
when switched off), `roster show` says which, and the DPIA pack names the cost."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.processes import run

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[2] / "data" / "roster"


def _payload(data: Path) -> str:
    bundle = json.loads((data / "policy" / "current.json").read_bytes())
    return base64.b64decode(bundle["payload"]).decode()


def test_switch_on_and_off_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "collector"
    run("safeguard-collector", "init", "--data", data)
    run("safeguard-collector", "roster", "import", "--data", data, DATA / "sims.csv",
        "--naming", "{first}.{last}")  # fmt: skip
    assert "profiles follow the year group: off" in run(
        "safeguard-collector", "roster", "show", "--data", data).stdout  # fmt: skip
    got = run("safeguard-collector", "roster", "profiles", "on", "--data", data).stdout
    assert "profiles now follow the year group: 3 logins" in got
    assert "published policy version 2 with each login's profile" in got
    text = _payload(data)
    assert "cara.jones" in text and "A123456789012" not in text and "5B" not in text
    assert "profiles follow the year group: on (3 roster logins given a profile)" in run(
        "safeguard-collector", "roster", "show", "--data", data).stdout  # fmt: skip
    # A later `policy publish` keeps them.
    run("safeguard-collector", "policy", "publish", "--data", data)
    assert "cara.jones" in _payload(data)
    run("safeguard-collector", "dpia", "--data", data)
    dpia = (data / "dpia" / "dpia.md").read_text()
    assert "Profiles follow the year group: every PC receives" in dpia
    got = run("safeguard-collector", "roster", "profiles", "off", "--data", data).stdout
    assert "profiles no longer follow the year group" in got
    assert "cara.jones" not in _payload(data)


def test_a_policy_that_does_not_load_leaves_the_pcs_policy_and_says_so(tmp_path: Path) -> None:
    import shutil

    from rules.load import DEFAULT_DIR

    data = tmp_path / "collector"
    run("safeguard-collector", "init", "--data", data)
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, rules)
    run("safeguard-collector", "policy", "publish", "--data", data, "--rules", rules)
    run("safeguard-collector", "roster", "import", "--data", data, DATA / "sims.csv",
        "--naming", "{first}.{last}")  # fmt: skip
    before = (data / "policy" / "current.json").read_bytes()
    (rules / "profiles.toml").write_text("default_profile = [broken\n")
    got = run("safeguard-collector", "roster", "profiles", "on", "--data", data, check=False)
    assert got.returncode == 1 and "Traceback" not in got.stderr, got.stderr
    assert "warning: the policy was not published again: " in got.stderr
    assert "mend the policy and run `safeguard-collector policy publish`" in got.stderr
    assert (data / "policy" / "current.json").read_bytes() == before
    assert "on (3 roster logins given a profile)" in run(
        "safeguard-collector", "roster", "show", "--data", data).stdout  # fmt: skip
