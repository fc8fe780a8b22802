"""Console test support: a real collector with the console on 127.0.0.1, agents that ship real
signed detections, and a small cookie-keeping HTTP client that submits forms as a browser does."""

from __future__ import annotations

import http.cookiejar
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from protos import envelope, events_pb2, ingest_pb2_grpc
from tests import agentsim
from tests.harness import CollectorHarness

PASSWORD = "correct horse battery staple"
STAFF = {
    "dsl": ("Dana Lead", "dsl"),
    "deputy": ("Dev Deputy", "deputy_dsl"),
    "head": ("Hana Head", "head"),
    "tech": ("Tom Technician", "technician"),
    "gov": ("Gill Governor", "governor"),
}


class ConsoleHarness(CollectorHarness):
    """CollectorHarness whose collector also serves the console (HTTP on 127.0.0.1:0)."""

    web = "127.0.0.1:0"

    @property
    def web_port(self) -> int:
        assert self.running.web is not None
        return self.running.web.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def add_staff(self) -> None:
        """One account per role, each with a password its owner chose (not flagged), so tests
        of other pages log straight in; tests of temporary passwords use `add_user`."""
        for username, (name, role) in STAFF.items():
            self.add_user(username, role, name, must_change=False)

    def add_user(
        self, username: str, role: str, name: str = "", password: str = PASSWORD, *,
        must_change: bool,
    ) -> None:  # fmt: skip
        self.op("user_add", username=username, display_name=name or username, role=role,
                password=password, must_change=must_change)  # fmt: skip

    def settle(self) -> None:
        """Wait until the writer has run every after-commit hook queued so far."""
        self.with_store(lambda s: None)


def keyword(
    category: str,
    terms: list[str],
    account: str = "pupil.amy",
    score: int = 10,
    context: str = "",
    at_ms: int | None = None,
    exemption: str = "",
    source: str = "keyboard",
) -> events_pb2.Event:
    return events_pb2.Event(
        observed_unix_ms=at_ms or int(time.time() * 1000),
        severity=3,
        account=account,
        event_id=os.urandom(8).hex(),
        keyword=events_pb2.KeywordDetection(
            category=category,
            list=f"keywords/{category}",
            terms=terms,
            score=score,
            context=context,
            application="chrome",
            window_title="Search",
            source=source,
            exemption=exemption,
        ),
    )


def url(
    category: str,
    address: str,
    account: str = "pupil.amy",
    at_ms: int | None = None,
    exemption: str = "",
) -> events_pb2.Event:
    host = urllib.parse.urlsplit(address).hostname or ""
    return events_pb2.Event(
        observed_unix_ms=at_ms or int(time.time() * 1000),
        severity=3,
        account=account,
        event_id=os.urandom(8).hex(),
        url=events_pb2.UrlDetection(
            category=category,
            list="urls:domain",
            url=address,
            rule=host,
            browser="chromium",
            exemption=exemption,
        ),
    )


def usb(action: int, account: str = "pupil.amy") -> events_pb2.Event:
    return events_pb2.Event(
        observed_unix_ms=int(time.time() * 1000),
        severity=3,
        account=account,
        event_id=os.urandom(8).hex(),
        usb=events_pb2.UsbDecision(
            action=action,
            vendor_id="0781",
            product_id="5581",
            serial="ABC123",
            manufacturer="SanDisk",
            product="Ultra",
            interfaces=["08:06:50"],
            rule="default block storage",
        ),
    )


def heartbeat(policy_version: str = "7") -> events_pb2.Event:
    return events_pb2.Event(
        observed_unix_ms=int(time.time() * 1000),
        event_id=os.urandom(8).hex(),
        heartbeat=events_pb2.Heartbeat(
            policy_version=policy_version,
            agent_version="0.1.0",
            outbox_pending=0,
            sensors=[events_pb2.SensorHealth(name="keyboard", state="running")],
        ),
    )


@dataclass
class Agent:
    """A simulated agent shipping real signed batches of the events a test gives it."""

    sim: agentsim.SimAgent
    stub: ingest_pb2_grpc.CollectorStub
    settle: Callable[[], None]

    @classmethod
    def enrol(cls, harness: CollectorHarness) -> Agent:
        return cls.connect(harness.address, harness.ca_path, harness.new_token(), harness.settle)  # type: ignore[attr-defined]

    @classmethod
    def connect(
        cls, address: str, ca: Path, token: str, settle: Callable[[], None] = lambda: None
    ) -> Agent:
        stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(address, ca))
        agent_id, key = agentsim.enrol(stub, token)
        return cls(agentsim.SimAgent(agent_id, key), stub, settle)

    @property
    def agent_id(self) -> str:
        return self.sim.agent_id

    def ship(self, *events: events_pb2.Event) -> None:
        sim = self.sim
        first, prev = sim.seq + 1, sim.head
        raws = []
        for i, ev in enumerate(events):
            ev.seq = first + i
            raws.append(envelope.event_bytes(ev))
        hashes = envelope.chain(prev, raws)
        sim.seq += len(raws)
        sim.head = hashes[-1]
        session = agentsim.Session(self.stub, sim)
        answer = session.send(sim.batch(session.welcome.nonce, first, prev, raws))
        session.close()
        assert answer.ack.last_seq == sim.seq, answer
        self.settle()


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx status and its Location


class Client:
    """Cookies kept, redirects followed, forms posted with the page's CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.peeker = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )
        self.csrf = ""
        self.last = ""

    def _open(self, req: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(req, timeout=60) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        text = body.decode("utf-8", "replace")
        if m := _CSRF.search(text):
            self.csrf = m.group(1)
        self.last = text
        return status, text

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.base + path))  # noqa: S310 -- our console

    def peek(self, path: str) -> tuple[int, str]:
        """GET without following a redirect: the status and where it points (or "")."""
        req = urllib.request.Request(self.base + path)  # noqa: S310 -- our own console
        try:
            with self.peeker.open(req, timeout=60) as resp:
                return resp.status, ""
        except urllib.error.HTTPError as exc:
            exc.read()
            exc.close()
            return exc.code, exc.headers.get("Location", "")

    def get_bytes(self, path: str) -> tuple[int, bytes, str]:
        req = urllib.request.Request(self.base + path)  # noqa: S310 -- our own console
        with self.opener.open(req, timeout=60) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")

    def post(
        self,
        path: str,
        data: dict[str, str] | None = None,
        csrf: bool = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        fields = dict(data or {})
        if csrf:
            if not self.csrf:
                self.get("/login")
            fields["csrf"] = self.csrf
        body = urllib.parse.urlencode(fields).encode()
        req = urllib.request.Request(  # noqa: S310 -- our own console
            self.base + path, data=body, headers=headers or {}, method="POST"
        )
        return self._open(req)

    def login(self, username: str, password: str = PASSWORD) -> tuple[int, str]:
        self.get("/login")
        return self.post("/login", {"username": username, "password": password})


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


__all__ = [
    "PASSWORD",
    "Agent",
    "Client",
    "ConsoleHarness",
    "Path",
    "heartbeat",
    "keyword",
    "url",
    "usb",
    "wait_for",
]
