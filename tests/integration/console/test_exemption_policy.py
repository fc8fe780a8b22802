"""An exemption approved in the console reaches agents: it goes into the next signed bundle,
and a matcher compiled from that bundle suppresses the term for that group (recording it)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector import policy
from rules import bundle
from rules.compile import Compiled
from rules.match import match_text
from tests.integration.console.support import Client, ConsoleHarness

pytestmark = pytest.mark.integration


def test_an_approved_exemption_is_published_to_agents(console: ConsoleHarness) -> None:
    policy.publish(console.data)  # version 1: the shipped rules
    tech, dsl = Client(console.url), Client(console.url)
    tech.login("tech")
    today = dt.date.today()
    status, _ = tech.post("/exemptions", {
        "grp": "ks2", "terms": "kill myself", "sites": "",
        "start": today.isoformat(), "end": (today + dt.timedelta(days=7)).isoformat(),
        "reason": "Year 6 PSHE lesson on mental health",
    })  # fmt: skip
    assert status == 200
    assert policy.current_version(console.data) == "1"  # a request alone changes nothing
    dsl.login("dsl")
    _, page = dsl.get("/exemptions")
    eid = re.search(r"/exemptions/(\d+)/approve", page)
    assert eid, "no approve button for the DSL"
    status, page = dsl.post(f"/exemptions/{eid.group(1)}/approve")
    assert status == 200 and "policy version 2 sent to agents" in page

    version, raw = policy.current(console.data) or (0, b"")
    assert version == 2
    key = Ed25519PublicKey.from_public_bytes(console.data.policy_pub.read_bytes())
    verified = bundle.verify_bundle(raw, key, installed=1)
    [exemption] = [e for e in verified.policy.exemptions if e.id == f"console-{eid.group(1)}"]
    assert exemption.group == "ks2" and exemption.approver == "dsl"
    [alert] = match_text(Compiled(verified.policy, "ks2"), "i want to kill myself")
    assert alert.suppressed and exemption.id in alert.exemptions
    [other] = match_text(Compiled(verified.policy, "ks1"), "i want to kill myself")
    assert not other.suppressed  # only the group it was approved for
    _, audit_page = dsl.get("/audit")
    assert "policy_published" in audit_page
