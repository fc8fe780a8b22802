"""The browser sensor reading the real history of headless Debian chromium and firefox-esr.

Pages are served on 127.0.0.1; the browsers reach "www.google.com" and friends there through
Chromium's --host-resolver-rules and Firefox's network.dns.localDomains. Each browser gets a
fresh profile under a temporary home that the sensor watches, as it would /home/<pupil>.
"""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.policy import ActivePolicy
from agent.sensors import SensorContext
from agent.sensors.browser import BrowserSensor
from protos import events_pb2
from rules.load import load_policy
from tests.conftest import require_tool

pytestmark = pytest.mark.e2e

HOSTS = ("www.google.com", "www.bing.com", "duckduckgo.com", "www.youtube.com",
         "www.bet365.com", "www.bbc.co.uk")  # fmt: skip
CHROMIUM_FLAGS = (
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--host-resolver-rules=MAP * 127.0.0.1", "--ignore-certificate-errors",
)  # fmt: skip
FIREFOX_PREFS = {
    "network.dns.localDomains": ",".join(HOSTS),
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "network.captive-portal-service.enabled": False,
    # duckduckgo.com, bing.com and others are on the HSTS preload list: keep them on http
    "network.stricttransportsecurity.preloadlist": False,
    "dom.security.https_first": False,
    "dom.security.https_only_mode": False,
}


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><head><title>page</title></head><body>ok</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test pages")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))  # fmt: skip
    (tmp / "page.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "page.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "page.pem", tmp / "page.key")
    return context


@pytest.fixture
def tls_web(tmp_path: Path) -> Iterator[int]:
    """HTTPS pages for Chromium (run with --ignore-certificate-errors): youtube.com and
    bbc.co.uk are on Chromium's HSTS preload list, which no flag turns off."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    server.socket = _self_signed(tmp_path).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def web() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class Running:
    """The sensor in a thread over one temporary home; emitted events in a list."""

    def __init__(self, home: Path, state: Path) -> None:
        state.mkdir(mode=0o700, exist_ok=True)
        self.events: list[events_pb2.Event] = []
        self.sensor = BrowserSensor(homes=lambda: [home], rescan_s=30, state_dir=state)
        active = ActivePolicy(0, load_policy())
        ctx = SensorContext(emit=self.events.append, policy=lambda: active)
        self.thread = threading.Thread(target=self.sensor.run, args=(ctx,), daemon=True)
        self.thread.start()
        assert self.sensor.ready.wait(60)  # generous: a loaded CI machine

    def wait(self, cond: Callable[[], bool], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert self.thread.is_alive(), "sensor died"
            assert time.monotonic() < deadline, f"timed out: {what}; events={self.events}"
            time.sleep(0.05)

    def close(self) -> None:
        self.sensor.stop()
        self.thread.join(10)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".config" / "chromium").mkdir(parents=True)
    (home / ".mozilla" / "firefox").mkdir(parents=True)
    return home


def chromium_visit(home: Path, url: str) -> None:
    """One clean run per page: --dump-dom exits cleanly, so History is committed at once."""
    subprocess.run([require_tool("chromium"), *CHROMIUM_FLAGS,
                    f"--user-data-dir={home / '.config' / 'chromium'}", "--dump-dom", url],
                   check=True, capture_output=True, timeout=60)  # fmt: skip


def firefox_profile(home: Path) -> Path:
    profile = home / ".mozilla" / "firefox" / "test.default-esr"
    profile.mkdir(exist_ok=True)
    lines = [f'user_pref("{k}", {"true" if v is True else "false" if v is False else repr(v)});'
             for k, v in FIREFOX_PREFS.items()]  # fmt: skip
    (profile / "user.js").write_text("\n".join(lines).replace("'", '"') + "\n")
    return profile


def firefox_visit(profile: Path, url: str) -> None:
    subprocess.run([require_tool("firefox-esr"), "--headless", "--no-remote", "--profile",
                    str(profile), "--screenshot", str(profile.parent / "shot.png"), url],
                   check=True, capture_output=True, timeout=90)  # fmt: skip


def kinds(events: list[events_pb2.Event]) -> list[tuple[str, str, str]]:
    out = []
    for e in events:
        if e.HasField("url"):
            out.append(("url", e.url.category, e.url.url))
        elif e.HasField("keyword"):
            out.append(("keyword", e.keyword.category, e.keyword.source))
    return out


def test_agent_browser_chromium_history_to_events(home: Path, tmp_path: Path, tls_web: int) -> None:
    require_tool("chromium")
    run = Running(home, tmp_path / "state")
    try:
        pages = [
            f"https://www.bbc.co.uk:{tls_web}/bitesize",  # innocent
            f"https://www.bet365.com:{tls_web}/",  # gambling (URL list)
            f"https://www.google.com:{tls_web}/search?q=cut+myself",  # self_harm query
            f"https://www.youtube.com:{tls_web}/results?search_query=how+to+kill+myself",
            f"https://www.google.com:{tls_web}/search?q=volcano+facts",  # innocent search
        ]
        for url in pages:
            chromium_visit(home, url)
        run.wait(lambda: run.sensor.visits_read >= len(pages), "all visits read")
        assert kinds(run.events) == [
            ("url", "gambling", pages[1]),
            ("keyword", "self_harm", "search:google"),
            ("keyword", "suicide", "search:youtube"),
        ]
        bet = run.events[0]
        assert bet.url.browser == "chromium" and bet.url.profile == "Default"
        assert list(bet.url.previous_urls) == [pages[0]]
        assert bet.url.visited_unix_ms > 0 and bet.severity >= 1
        assert run.events[1].keyword.context == "cut myself"
        assert run.events[1].severity >= 4 and run.events[1].account
    finally:
        run.close()
    cursors = (tmp_path / "state" / "browser_cursors.json").read_text()
    assert "bbc" not in cursors and "google" not in cursors  # ids only, no URLs on disk


def test_agent_browser_firefox_history_to_events(home: Path, tmp_path: Path, web: int) -> None:
    require_tool("firefox-esr")
    profile = firefox_profile(home)
    run = Running(home, tmp_path / "state")
    try:
        pages = [
            f"http://www.bbc.co.uk:{web}/news",
            f"http://duckduckgo.com:{web}/?q=i+want+to+kill+myself",
            f"http://www.bing.com:{web}/search?q=cut+myself",
        ]
        for url in pages:
            firefox_visit(profile, url)
        run.wait(lambda: run.sensor.visits_read >= len(pages), "all visits read")
        assert kinds(run.events) == [
            ("keyword", "suicide", "search:duckduckgo"),
            ("keyword", "self_harm", "search:bing"),
        ]
        assert all(e.keyword.application == "firefox" for e in run.events)
    finally:
        run.close()


def test_agent_browser_resumes_from_its_cursor(home: Path, tmp_path: Path, tls_web: int) -> None:
    """A restarted sensor reads only what was visited since; history from before the first
    start is not reported."""
    require_tool("chromium")
    chromium_visit(home, f"https://www.bet365.com:{tls_web}/before-the-agent")
    first = Running(home, tmp_path / "state")
    first.close()
    assert first.events == []
    chromium_visit(home, f"https://www.bet365.com:{tls_web}/while-stopped")
    second = Running(home, tmp_path / "state")
    try:
        second.wait(lambda: len(second.events) >= 1, "the visit made while stopped")
        assert [e.url.url for e in second.events] == [f"https://www.bet365.com:{tls_web}/while-stopped"]
    finally:
        second.close()
