"""Browser sensor: time from a page visit to its event, and the sensor's CPU/RSS under load.

    .venv/bin/python bench/bench_browser.py [--seconds 60] [--write]

The sensor runs in a child process (as in the agent) over a temporary home. Firefox-esr
visits 10 pages (one headless --screenshot run each; Firefox writes the visit to its WAL at
once). Chromium (Debian's, driven by Playwright, no download) stays open and loads a page a
second for --seconds: it commits History every 10 s, so its latency is mostly that. Latency
= the event's emit time minus the visit time the browser recorded. CPU and RSS are the
sensor process's, sampled every second while Chromium loads pages. --write puts the figures
in bench/results/browser.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(home: Path) -> None:
    from agent.policy import ActivePolicy
    from agent.sensors import SensorContext
    from agent.sensors.browser import BrowserSensor
    from protos import events_pb2
    from rules.load import load_policy

    active = ActivePolicy(0, load_policy())

    def emit(event: events_pb2.Event) -> None:
        now = int(time.time() * 1000)
        print(json.dumps({"browser": event.url.browser, "visited": event.url.visited_unix_ms,
                          "emitted": now}), flush=True)  # fmt: skip

    sensor = BrowserSensor(homes=lambda: [home], state_dir=home / "state")
    thread = threading.Thread(target=sensor.run, args=(SensorContext(emit, lambda: active),),
                              daemon=True)  # fmt: skip
    thread.start()
    sensor.ready.wait()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.read()  # until the parent closes stdin
    sensor.stop()
    thread.join(10)


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>page</body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", type=Path)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    import psutil
    from playwright.sync_api import sync_playwright

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    tmp = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    home = tmp / "home"
    for d in (".config/chromium", ".mozilla/firefox/bench.default", "state"):
        (home / d).mkdir(parents=True)
    ff = home / ".mozilla/firefox/bench.default"
    (ff / "user.js").write_text(
        'user_pref("network.dns.localDomains", "www.bet365.com");\n'
        'user_pref("browser.shell.checkDefaultBrowser", false);\n'
        'user_pref("dom.security.https_first", false);\n')  # fmt: skip
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(home)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    assert json.loads(proc.stdout.readline())["ready"]
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: [lines.append(json.loads(x)) for x in proc.stdout],
                              daemon=True)  # fmt: skip
    reader.start()
    sensor = psutil.Process(proc.pid)

    for i in range(10):  # Firefox: one visit per run
        subprocess.run(["firefox-esr", "--headless", "--no-remote", "--profile", str(ff),
                        "--screenshot", str(tmp / "shot.png"),
                        f"http://www.bet365.com:{port}/ff{i}"], capture_output=True,
                       check=True, timeout=90)  # fmt: skip
    deadline = time.monotonic() + 30
    while sum(x["browser"] == "firefox" for x in lines) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)

    cpu: list[float] = []
    rss: list[int] = []
    sensor.cpu_percent(None)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(home / ".config/chromium"), executable_path="/usr/bin/chromium", headless=True,
            args=["--no-sandbox", "--host-resolver-rules=MAP * 127.0.0.1"])  # fmt: skip
        page = ctx.new_page()
        start = time.monotonic()
        for i in range(args.seconds):
            page.goto(f"http://www.bet365.com:{port}/cr{i}")
            time.sleep(max(0.0, start + i + 1 - time.monotonic()))
            cpu.append(sensor.cpu_percent(None))
            rss.append(sensor.memory_info().rss)
        deadline = time.monotonic() + 15  # Chromium commits every 10 s while running
        while sum(x["browser"] == "chromium" for x in lines) < args.seconds - 1 and (
                time.monotonic() < deadline):  # fmt: skip
            time.sleep(0.1)
        ctx.close()
    proc.stdin.close()
    proc.wait(15)
    server.shutdown()
    report(lines, cpu, rss, args)


def report(lines: list[dict[str, Any]], cpu: list[float], rss: list[int],
           args: argparse.Namespace) -> None:  # fmt: skip
    out = ["# Browser sensor: visit to event, and footprint", "",
           f"Command: `.venv/bin/python bench/bench_browser.py --seconds {args.seconds} --write`",
           f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
           f"{platform.python_version()}", "",
           "| browser | visits seen | p50 ms | p95 ms | max ms | goal |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for browser, goal in (("firefox", "< 2,000"), ("chromium", "< 15,000")):
        lat = sorted(x["emitted"] - x["visited"] for x in lines if x["browser"] == browser)
        if lat:
            p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
            out.append(f"| {browser} | {len(lat)} | {statistics.median(lat):.0f} | {p95} | "
                       f"{lat[-1]} | {goal} |")  # fmt: skip
    out += ["", f"Sensor process while Chromium loads a page a second for {args.seconds} s: "
            f"CPU mean {statistics.mean(cpu):.2f}% / max {max(cpu):.1f}% of one core; "
            f"RSS max {max(rss) / 2**20:.1f} MiB."]  # fmt: skip
    text = "\n".join(out) + "\n"
    print(text)
    if args.write:
        (ROOT / "bench" / "results" / "browser.md").write_text(text)


if __name__ == "__main__":
    main()
