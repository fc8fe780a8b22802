"""Profiles following the year group (issue 17 item 1), end to end: with the school's switch on,
a roster import publishes a policy in which each login has its profile, and the agent's own
policy holder, given the bundle a PC fetches, applies KS1 to a Year 2 pupil, KS2 once she is
in Year 3, and staff to a member of staff. The bundle holds login names and profiles only: no
name, year, class or UPN. Off (the default, and again after switching off), no login at all."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import profiles
from agent.policy import PolicyHolder
from collector import policy
from collector.integrity import audit
from tests.integration.console.support import Client, ConsoleHarness

pytestmark = pytest.mark.integration
# Names no shipped list or corpus holds, so finding one in a bundle means it leaked.
DIRECTORY = ("sAMAccountName,givenName,sn,employeeID\npupil.amy,Amelinde,Vantrowski,A123456789012"
             "\npupil.ben,Benedikt,Zolkower,\nstaff.sam,Samwise,Threadgold,\n")  # fmt: skip


def _mis(amy_year: str) -> str:
    return ("Forename,Surname,Year,Reg Group,UPN,Role\n"
            f"Amelinde,Vantrowski,Year {amy_year},{amy_year}QX,A123456789012,\n"
            "Benedikt,Zolkower,Year 5,5ZW,,\nSamwise,Threadgold,,,,Teacher\n")  # fmt: skip


class Pc:
    """An agent's policy holder, fed what a PC fetches from the collector."""

    def __init__(self, console: ConsoleHarness, state: Path) -> None:
        key = Ed25519PublicKey.from_public_bytes(console.data.policy_pub.read_bytes())
        self.console = console
        self.holder = PolicyHolder(state / "policy-last-good.json", key)

    def fetch(self) -> bytes:
        offered = policy.newer_than(self.console.data, str(self.holder.version))
        if offered.bundle:
            self.holder.apply(offered.bundle)
        return offered.bundle

    def profile(self, login: str) -> str:
        """As the PC decides it for a login in no local group."""
        return profiles.choose(self.holder.current().policy, login, []).name


def _current(console: ConsoleHarness) -> str:
    found = policy.current(console.data)
    assert found is not None
    return _payload(found[1])


def _payload(bundle: bytes) -> str:
    return base64.b64decode(json.loads(bundle)["payload"]).decode()


def test_a_roster_import_changes_the_profile_a_pc_applies(
    console: ConsoleHarness, tmp_path: Path
) -> None:
    policy.publish(console.data)  # as `safeguard-collector init` does
    pc = Pc(console, tmp_path)
    console.op("roster_import", text=_mis("2"), accounts=DIRECTORY)
    pc.fetch()
    assert pc.profile("pupil.amy") == "ks2"  # off by default: the default profile
    assert "pupil.amy" not in _current(console)
    got = console.op("roster_profiles", on=True, by="tech1")
    assert (got["on"], got["assigned"], got["publish_error"]) == (True, 3, "")
    bundle = pc.fetch()
    assert (pc.profile("pupil.amy"), pc.profile("pupil.ben"), pc.profile("staff.sam"),
            pc.profile("someone.else")) == ("ks1", "ks2", "staff", "ks2")  # fmt: skip
    text = _payload(bundle)
    for private in ("Amelinde", "Vantrowski", "Zolkower", "Threadgold", "A123456789012", "2QX",
                    "5ZW"):
        assert private not in text, private
    # Amy moves up to Year 3: the next import publishes, and the PC protects her as KS2.
    got = console.op("roster_import", text=_mis("3"), accounts=DIRECTORY)
    assert got["published"] and not got["publish_error"]
    pc.fetch()
    assert pc.profile("pupil.amy") == "ks2"
    # A correction in the MIS (she is in Year 1): KS1 again.
    console.op("roster_import", text=_mis("1"), accounts=DIRECTORY)
    pc.fetch()
    assert pc.profile("pupil.amy") == "ks1"
    got = console.op("roster_profiles", on=False)
    assert (got["on"], got["assigned"]) == (False, 0)
    pc.fetch()
    assert pc.profile("pupil.amy") == "ks2"
    assert "pupil.amy" not in _current(console)
    switched = [r["detail"] for r in console.with_store(lambda s: audit.read(s.con))
                if r["action"] == "roster_profiles"]  # fmt: skip
    assert switched == ["off (was on)", "on (was off)"]


def test_an_import_from_the_console_publishes_too(console: ConsoleHarness, tmp_path: Path) -> None:
    from tests.integration.console.test_roster import upload

    pc = Pc(console, tmp_path)
    console.op("roster_profiles", on=True)
    dsl = Client(console.url)
    dsl.login("dsl")
    status, page = upload(dsl, {"file": _mis("R"), "accounts": DIRECTORY}, {"naming": ""})
    assert status == 200 and "with each login&#39;s profile from the roster" in page, page
    assert "On: the policy gives 3 logins their profile" in page
    pc.fetch()
    assert pc.profile("pupil.amy") == "ks1"  # Reception is KS1
