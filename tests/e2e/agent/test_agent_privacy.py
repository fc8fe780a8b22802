"""Privacy you can prove: after a stretch of typing (ordinary text, a password, one detection),
nothing typed is in any file the agent or its helper wrote, nor in anything they sent, except
the detection's own capped context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.identity import StateDir, load_identity
from tests.e2e.agent.conftest import keyboard_running, wait_until
from tests.e2e.agent.desktop import AgentProcesses, Desktop
from tests.harness import CollectorHarness

pytestmark = pytest.mark.e2e

ORDINARY = "my marmalade elephant quartered the zebra fiddle today"
PASSWORD = "swordfish hunter2 Qx7vJm kill them all"  # a test secret, typed only
DETECTION = "long ago on a yesterday morning I said i will kill you"  # 12 words
SECRETS = ("marmalade", "elephant", "quartered", "zebra", "fiddle", "swordfish", "hunter2",
           "Qx7vJm", "them all", "long ago on")  # fmt: skip


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def leaks(data: bytes, needles: tuple[str, ...]) -> list[str]:
    found = []
    for needle in needles:
        for form in (needle.encode(), needle.encode("utf-16-le"), needle.lower().encode()):
            if form in data:
                found.append(needle)
    return found


def test_nothing_typed_is_kept_or_sent_but_the_detection_context(
    collector: CollectorHarness,
    state: StateDir,
    desktop: Desktop,
    agent: AgentProcesses,
    tmp_path: Path,
) -> None:
    agent_id = load_identity(state).agent_id
    desktop.window("notes")
    desktop.window("Enter password")
    desktop.focus("notes")
    wait_until(lambda: keyboard_running(collector, agent_id), what="the helper capturing")
    desktop.type(ORDINARY + "\n")
    desktop.focus("Enter password")
    desktop.type(PASSWORD + "\n")
    desktop.focus("notes")
    desktop.type("x\n" + DETECTION + "\n")

    def keywords() -> list[dict[str, Any]]:
        events = collector.events(agent_id)
        return [e["event"]["keyword"] for e in events if "keyword" in e["event"]]

    wait_until(keywords, what="the detection")
    agent.stop()  # every log flushed, the outbox closed: now look at everything

    found = keywords()
    assert [k["context"] for k in found] == ["yesterday morning I said i will kill you"]  # 8 words
    # 1. what was sent: every stored event, decoded (the wire is TLS; the collector stores
    #    exactly the bytes the agent signed, so this is every byte of every event sent)
    stored = json.dumps(collector.events(agent_id))
    assert leaks(stored.encode(), SECRETS) == []
    outside = [e for e in collector.events(agent_id) if "keyword" not in e["event"]]
    assert leaks(json.dumps(outside).encode(), ("kill", "I said")) == []
    # 2. what was written: the state folder (outbox + WAL, policy, identity), the logs of
    #    both processes, their TMPDIR, the socket's folder
    written = files_under(state.root, agent.work)
    assert any(p.name.startswith("outbox.sqlite") for p in written)
    assert any(p.name == "helper.err" for p in written)
    for path in written:
        assert leaks(path.read_bytes(), SECRETS) == [], path
        if path.suffix in (".err", ".out"):  # logs never hold a detection's context either
            assert leaks(path.read_bytes(), ("kill you", "I said")) == [], path
    assert files_under(agent.tmpdir) == []  # neither process left a temporary file
