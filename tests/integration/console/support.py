"""Console test support: a real collector with the console on 127.0.0.1, agents that ship real
signed detections, and a small cookie-keeping HTTP client that submits forms as a browser does."""

from __future__ import annotations

import http.cookiejar
import http.server
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from collector import two_factor
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

    def start(self) -> None:
        super().start()
        PHONES[self.url] = self.phones  # the console's port changes with each start

    def add_staff(self) -> None:
        """One account per role, each with a password its owner chose (not flagged), so tests
        of other pages log straight in; tests of temporary passwords use `add_user`."""
        for username, (name, role) in STAFF.items():
            self.add_user(username, role, name, must_change=False)

    def add_user(
        self, username: str, role: str, name: str = "", password: str = PASSWORD, *,
        must_change: bool,
    ) -> None:  # fmt: skip
        """As `safeguard-collector user add`: roles that need a second factor get their
        secret now, which the harness keeps as the person's phone would."""
        done = self.op("user_add", username=username, display_name=name or username, role=role,
                       password=password, must_change=must_change)  # fmt: skip
        if done.get("otpauth_uri"):
            self.phones.secrets[username] = secret_of(done["otpauth_uri"])

    @property
    def phones(self) -> Phones:
        if not hasattr(self, "_phones"):
            self._phones = Phones(self)
        return self._phones

    def settle(self) -> None:
        """Wait until the writer has run every after-commit hook queued so far."""
        self.with_store(lambda s: None)


def secret_of(uri: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]


class Phones:
    """Each account's authenticator app: the code for the current time step. The console takes
    each step's code once only, so a test that logs one account in again within the same 30 s
    gets the next step's code (allowed for clock drift), and after that the harness sets the
    account up again with a new secret, as a DSL with a new phone would."""

    def __init__(self, harness: ConsoleHarness) -> None:
        self.harness = harness
        self.secrets: dict[str, str] = {}
        self.last: dict[str, int] = {}

    def code(self, username: str) -> str:
        secret = self.secrets.get(username)
        if secret is None:
            return ""
        step = int(time.time() // 30)
        nxt = max(step, self.last.get(username, -1) + 1)
        if nxt > step + 1:
            secret = self.secrets[username] = two_factor.new_secret()
            self.harness.with_store(lambda s: two_factor.enrol(s, username, secret, []))
            nxt = step
        self.last[username] = nxt
        return two_factor.current_code(secret, nxt * 30.0)


# The phones of each running console harness, by its URL (a Client knows only the URL).
PHONES: dict[str, Phones] = {}


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
            with self.opener.open(req, timeout=180) as resp:
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
            with self.peeker.open(req, timeout=180) as resp:
                return resp.status, ""
        except urllib.error.HTTPError as exc:
            exc.read()
            exc.close()
            return exc.code, exc.headers.get("Location", "")

    def get_bytes(self, path: str) -> tuple[int, bytes, str]:
        req = urllib.request.Request(self.base + path)  # noqa: S310 -- our own console
        with self.opener.open(req, timeout=180) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")

    def post(
        self,
        path: str,
        data: dict[str, str] | list[tuple[str, str]] | None = None,
        csrf: bool = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """`data` as a list of pairs for a form that repeats a name (ticked checkboxes)."""
        fields = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            if not self.csrf:
                self.get("/login")
            fields.append(("csrf", self.csrf))
        body = urllib.parse.urlencode(fields).encode()
        req = urllib.request.Request(  # noqa: S310 -- our own console
            self.base + path, data=body, headers=headers or {}, method="POST"
        )
        return self._open(req)

    def login(
        self, username: str, password: str = PASSWORD, code: str | None = None
    ) -> tuple[int, str]:
        """Log in; the second factor is the account's current code unless `code` is given."""
        self.get("/login")
        if code is None:
            phones = PHONES.get(self.base)
            code = phones.code(username) if phones else ""
        return self.post("/login", {"username": username, "password": password, "code": code})

    def enrol(self) -> tuple[str, list[str]]:
        """Set up two-factor sign-in from the page the console sends a new account to: the
        secret it offers and the recovery codes it shows once."""
        status, page = self.get("/two-factor")
        assert status == 200, page
        m = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
        assert m, page
        # ...and the same setup link as a QR code for the phone's camera (inline SVG).
        assert re.search(r'<svg [^>]*class="totp-qr"', page), page
        status, page = self.post("/two-factor", {"code": two_factor.current_code(m.group(1))})
        assert status == 200 and "recovery codes" in page, page
        return m.group(1), re.findall(r"<li><code>([a-z0-9-]+)</code></li>", page)


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


class Hook(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: each POSTed JSON body lands in `received`."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass
