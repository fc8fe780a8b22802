"""Screenshots in the console (issue 18): a real collector, an agent that ships a signed
detection naming a sealed screenshot and uploads it over gRPC, and staff over HTTP. DSL roles
see it (each view audited, never cached); other roles get "not found", audited; a screenshot
not yet received, or one changed on disk, is said so, and the latter is a tampering record."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import time
import urllib.request
import zlib
from pathlib import Path

import pytest

from collector import policy
from collector.integrity import audit
from collector.storage import retention
from protos import evidence
from rules.load import DEFAULT_DIR
from tests import agentsim
from tests.integration.console.support import Agent, Client, ConsoleHarness, heartbeat, keyword

pytestmark = pytest.mark.integration


def png(width: int = 8, height: int = 4, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real PNG of one colour (no imaging library needed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))  # fmt: skip

    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))  # fmt: skip


class Shot:
    """A detection whose PC sealed a screenshot to this collector's key."""

    def __init__(self, console: ConsoleHarness, agent: Agent, image: bytes | None = None,
                 event_id: str | None = None, sealed_for: str | None = None) -> None:  # fmt: skip
        self.agent = agent
        self.event_id = event_id or os.urandom(8).hex()
        self.image = image or png()
        pub = console.data.evidence_pub.read_bytes()
        self.sealed = evidence.seal(pub, self.image, agent.agent_id, sealed_for or self.event_id)
        self.sha = hashlib.sha256(self.sealed).hexdigest()

    def ship_event(self) -> None:
        ev = keyword("self_harm", ["hurt myself"], context="how to hurt myself")
        ev.event_id = self.event_id
        ev.screenshot_sha256 = bytes.fromhex(self.sha)
        self.agent.ship(ev)

    def upload(self) -> None:
        ack = agentsim.put_screenshot(self.agent.stub, self.agent.agent_id, self.agent.sim.key,
                                      self.event_id, self.sealed, 4096)  # fmt: skip
        assert ack.complete


def incident_of(console: ConsoleHarness) -> int:
    rows = console.op("incidents", status="")["rows"]
    assert len(rows) == 1, rows
    return int(rows[0]["id"])


def fetch(client: Client, path: str) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(client.base + path)  # noqa: S310 -- our own console
    try:
        with client.opener.open(req, timeout=60) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def audit_rows(console: ConsoleHarness, action: str) -> list[tuple[str, str, str]]:
    return console.with_store(lambda s: s.con.execute(
        "SELECT actor, target, detail FROM audit WHERE action = ? ORDER BY seq",
        [action]).fetchall())  # fmt: skip


def test_a_dsl_sees_the_screenshot_and_the_audit_records_it(console: ConsoleHarness) -> None:
    agent = Agent.enrol(console)
    shot = Shot(console, agent)
    shot.upload()  # the image may arrive before its event
    shot.ship_event()
    iid = incident_of(console)
    dsl = Client(console.url)
    dsl.login("dsl")
    status, page = dsl.get(f"/incidents/{iid}")
    link = f"/incidents/{iid}/screenshots/{shot.sha}"
    assert status == 200 and f'href="{link}"' in page, page
    status, page = dsl.get(link)
    assert status == 200 and f'src="{link}/image"' in page, page
    status, body, headers = fetch(dsl, f"{link}/image")
    assert status == 200 and body == shot.image
    assert headers["Content-Type"] == "image/png" and headers["Cache-Control"] == "no-store"
    seen = audit_rows(console, "view_screenshot")
    assert seen == [("dsl", f"incident:{iid}",
                     f"sha256={shot.sha} agent={agent.agent_id} seq=1")]  # fmt: skip
    for role in ("deputy", "head"):
        other = Client(console.url)
        other.login(role)
        assert fetch(other, f"{link}/image")[0] == 200
    assert [r[0] for r in audit_rows(console, "view_screenshot")] == ["dsl", "deputy", "head"]


@pytest.mark.parametrize("role", ["tech", "gov"])
def test_other_roles_get_not_found_and_the_refusal_is_audited(
    console: ConsoleHarness, role: str
) -> None:
    agent = Agent.enrol(console)
    shot = Shot(console, agent)
    shot.ship_event()
    shot.upload()
    iid = incident_of(console)
    them = Client(console.url)
    them.login(role)
    link = f"/incidents/{iid}/screenshots/{shot.sha}"
    for path in (link, f"{link}/image"):
        status, body, _ = fetch(them, path)
        assert status == 404 and shot.image not in body
    refused = audit_rows(console, "refused")
    assert [(a, t) for a, t, _ in refused] == [(role, f"incident:{iid}")] * 2
    assert all("kind=screenshot_role" in d for _, _, d in refused)
    assert audit_rows(console, "view_screenshot") == []


def test_a_screenshot_not_received_yet_and_an_event_without_one(console: ConsoleHarness) -> None:
    agent = Agent.enrol(console)
    shot = Shot(console, agent)
    shot.ship_event()
    agent.ship(keyword("self_harm", ["end it"], context="i just want to end it"))
    iid = incident_of(console)
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.get(f"/incidents/{iid}")
    assert "screenshot not received yet" in page and "no screenshot" in page
    assert "/screenshots/" not in page
    status, page = dsl.get(f"/incidents/{iid}/screenshots/{shot.sha}")
    assert status == 200 and "Screenshot not received yet" in page
    assert fetch(dsl, f"/incidents/{iid}/screenshots/{shot.sha}/image")[0] == 404
    shot.upload()
    _, page = dsl.get(f"/incidents/{iid}")
    assert f"/incidents/{iid}/screenshots/{shot.sha}" in page
    # A hash no event of this incident names is not found, whoever asks.
    assert fetch(dsl, f"/incidents/{iid}/screenshots/{'0' * 64}")[0] == 404


def _tampering(console: ConsoleHarness) -> list[tuple[str, str]]:
    return console.with_store(lambda s: s.con.execute(
        "SELECT kind, detail FROM tampering WHERE kind = 'screenshot'").fetchall())  # fmt: skip


def test_a_screenshot_changed_on_disk_is_not_shown_and_is_a_tampering_record(
    console: ConsoleHarness,
) -> None:
    agent = Agent.enrol(console)
    shot = Shot(console, agent)
    shot.ship_event()
    shot.upload()
    iid = incident_of(console)
    held = console.data.root / f"screenshots/{agent.agent_id}/{shot.sha}.sealed"
    other = Shot(console, agent, image=png(rgb=(0, 0, 255)), event_id=shot.event_id)
    held.write_bytes(other.sealed)  # swapped behind the collector's back
    dsl = Client(console.url)
    dsl.login("dsl")
    status, page = dsl.get(f"/incidents/{iid}/screenshots/{shot.sha}")
    assert status == 200 and "not the one the event names" in page
    assert 'src="' + f"/incidents/{iid}/screenshots/" not in page
    status, body, _ = fetch(dsl, f"/incidents/{iid}/screenshots/{shot.sha}/image")
    assert status == 404 and other.image not in body
    found = _tampering(console)
    assert len(found) == 1 and shot.sha in found[0][1]  # once, however often it is looked at
    candidates = console.op("incidents", status="")["rows"]
    assert [r["category"] for r in candidates if r["kind"] == "tampering"] == ["tampering"]
    assert audit_rows(console, "view_screenshot") == []


def test_a_screenshot_sealed_for_another_event_does_not_open(console: ConsoleHarness) -> None:
    agent = Agent.enrol(console)
    shot = Shot(console, agent, sealed_for="someotherevent")  # the event names this very file
    shot.ship_event()
    shot.upload()
    iid = incident_of(console)
    dsl = Client(console.url)
    dsl.login("dsl")
    status, page = dsl.get(f"/incidents/{iid}/screenshots/{shot.sha}")
    assert status == 200 and "does not open" in page
    assert len(_tampering(console)) == 1


def _held(console: ConsoleHarness) -> set[str]:
    return {r[0] for r in console.with_store(
        lambda s: s.con.execute("SELECT sha256 FROM screenshots").fetchall())}  # fmt: skip


def _purge(console: ConsoleHarness, days_on: int) -> dict[str, int]:
    key = audit.load_key(console.data)
    now = int(time.time() * 1000) + days_on * retention.DAY_MS
    return dict(console.with_store(lambda s: retention.purge(s, audit.Audit(key), "dsl", now)))


def _four(console: ConsoleHarness) -> tuple[Shot, dict[str, Path]]:
    """Four held screenshots of one PC: the first's event is evidence of an open incident,
    the second's event never came, the third's event is no incident's evidence, and the fourth
    was sent under the first's event id, which names another file."""
    agent = Agent.enrol(console)
    evidence_shot = Shot(console, agent)
    evidence_shot.ship_event()
    evidence_shot.upload()
    orphan = Shot(console, agent)
    orphan.upload()
    routine = Shot(console, agent)
    beat = heartbeat()
    beat.event_id, beat.screenshot_sha256 = routine.event_id, bytes.fromhex(routine.sha)
    agent.ship(beat)
    routine.upload()
    impostor = Shot(console, agent, image=png(rgb=(1, 2, 3)), event_id=evidence_shot.event_id)
    impostor.upload()
    files = {s.sha: console.data.root / f"screenshots/{agent.agent_id}/{s.sha}.sealed"
             for s in (evidence_shot, orphan, routine, impostor)}  # fmt: skip
    assert _held(console) == set(files)
    return evidence_shot, files


def _kept_only(console: ConsoleHarness, shot: Shot, files: dict[str, Path]) -> None:
    assert _held(console) == {shot.sha}
    assert [sha for sha, f in files.items() if f.exists()] == [shot.sha]
    assert audit_rows(console, "purge")[-1][2].endswith("screenshots=3")


def test_retention_purges_screenshots_with_their_events(console: ConsoleHarness) -> None:
    shot, files = _four(console)
    assert "screenshots" not in _purge(console, 40)  # within the events period (365 days)
    assert _held(console) == set(files)
    # The heartbeat went; no event came for the orphan; the impostor's event names another.
    assert _purge(console, 400)["screenshots"] == 3
    _kept_only(console, shot, files)  # evidence of an open incident stays with its event


def test_retention_purges_screenshots_sooner_when_the_policy_says(
    console: ConsoleHarness, tmp_path: Path
) -> None:
    shot, files = _four(console)
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, rules)
    toml = rules / "screenshots.toml"
    toml.write_text(toml.read_text().replace("budget_mb = 20",
                                             "budget_mb = 20\nretention_days = 30"))
    policy.publish(console.data, rules)
    assert _purge(console, 40)["screenshots"] == 3
    _kept_only(console, shot, files)


def test_the_cpoms_export_includes_screenshots_only_when_asked(console: ConsoleHarness) -> None:
    agent = Agent.enrol(console)
    shot = Shot(console, agent, image=png(64, 48))
    shot.ship_event()
    shot.upload()
    iid = incident_of(console)
    dsl = Client(console.url)
    dsl.login("dsl")
    _, page = dsl.get(f"/incidents/{iid}")
    assert 'name="screenshots"' in page  # the box to tick, unticked
    plain = fetch(dsl, f"/incidents/{iid}/export.pdf")[1]
    assert b"/Subtype /Image" not in plain
    csv_plain = fetch(dsl, f"/incidents/{iid}/export.csv")[1].decode()
    assert shot.sha in csv_plain and "not included in this export" in csv_plain
    status, with_shots, headers = fetch(dsl, f"/incidents/{iid}/export.pdf?screenshots=1")
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert b"/Subtype /Image" in with_shots  # the picture is in the PDF
    csv_text = fetch(dsl, f"/incidents/{iid}/export.csv?screenshots=1")[1].decode()
    assert f"included: screenshot-{shot.sha[:16]}.png" in csv_text
    exports = [d for _, t, d in audit_rows(console, "export") if t == f"incident:{iid}"]
    assert exports == ["pdf", "csv", f"pdf screenshots={shot.sha}", f"csv screenshots={shot.sha}"]
