"""Screenshot evidence on a real X server (Xvfb): capture-to-outbox time, bytes per image, and
what taking and shipping pictures does to the keystroke path and to events.

    .venv/bin/python bench/bench_screenshot.py            # print the figures
    .venv/bin/python bench/bench_screenshot.py --write    # also write bench/results/screenshot.md

- capture-to-outbox: `Screenshotter.handle` as the service runs it: the capture child
  (`python -m agent.sensors.screen_x11`: GetImage of the window, downscale to max_width, PNG),
  then seal (X25519 + ChaCha20-Poly1305) and write with fsync into the evidence outbox; per
  window kind at the shipped max_width (1280) and at 640;
- keystroke path: the service's detector thread fed at 200 keys/s (the shipped KS2 matcher), a
  severe phrase on every line (each one a screenshot), lateness of each key from when it was
  due to when `KeystrokeDetector.key` returned, without screenshots and with them taken and
  uploaded at the same time (PutEvidence to a servicer on loopback);
- event latency: from the detector's sink to the event being emitted, with and without a
  picture (the worker waits for at most 2 s; the shipper never waits for pictures).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from PIL import Image
from Xlib import X, display

from agent.detector import KeystrokeDetector, WindowInfo, alert_event
from agent.evidence_store import EvidenceStore
from agent.evidence_upload import EvidenceUploader
from agent.policy import ActivePolicy
from agent.screenshots import Screen, Screenshotter, _Job
from protos import events_pb2, ingest_pb2, ingest_pb2_grpc
from protos.evidence import public_key_of
from rules.load import DEFAULT_DIR, load_files, read_folder
from rules.load_evidence import evidence_key_file

KEYS = 4000
RATE = 200
LINE = "we talked about the trip and the weather then i want to die\n"


def xvfb() -> tuple[subprocess.Popen[bytes], str]:
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24",
                             "-nolisten", "tcp"], pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as fh:
        return proc, f":{fh.readline().strip()}"


def window(d: display.Display, kind: str) -> int:
    """A 1280x960 window: flat colour blocks, text-like stripes, or noise (the worst case)."""
    screen = d.screen()
    w = screen.root.create_window(0, 0, 1280, 960, 0, screen.root_depth, background_pixel=0xFFFFFF,
                                  event_mask=X.StructureNotifyMask)
    w.map()
    while d.next_event().type != X.MapNotify:
        pass
    if kind == "blocks":
        for i in range(12):
            gc = w.create_gc(foreground=(i * 0x151515) & 0xFFFFFF)
            w.fill_rectangle(gc, (i % 4) * 320, (i // 4) * 320, 320, 320)
    elif kind == "text-like":
        gc = w.create_gc(foreground=0x202020)
        rnd = __import__("random").Random(1)
        for y in range(10, 950, 18):  # lines of "words": short dark runs on white
            x = 10
            while x < 1200:
                n = rnd.randint(3, 12) * 7
                w.fill_rectangle(gc, x, y, n, 11)
                x += n + 7
    else:
        img = Image.frombytes("RGB", (1280, 960), os.urandom(1280 * 960 * 3))
        w.put_pil_image(w.create_gc(), 0, 0, img)
    d.sync()
    return int(w.id)


def policy(width: int, key: bytes) -> ActivePolicy:
    files = {k: v for k, v in read_folder(DEFAULT_DIR).items() if not k.startswith("semantic")}
    files["screenshots.toml"] = (f"[screenshots]\nenabled = true\nmax_width = {width}\n"
                                 'budget_mb = 200\n[[rule]]\nprofile = "ks2"\n'
                                 'categories = ["suicide"]\nmin_severity = 1\n')
    files["evidence_key.toml"] = evidence_key_file(key)
    return ActivePolicy(1, load_files(files))


def q(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100)[pct - 1] if len(values) > 1 else values[0]


class Sink(ingest_pb2_grpc.CollectorServicer):
    def PutEvidence(self, request: ingest_pb2.EvidenceChunk,
                    context: grpc.ServicerContext) -> ingest_pb2.EvidenceAck:
        end = request.offset + len(request.data)
        return ingest_pb2.EvidenceAck(have=end, complete=end == request.size)


def capture_rows(name: str, tmp: Path, key: bytes, d: display.Display) -> list[str]:
    rows = []
    for kind in ("blocks", "text-like", "noise"):
        wid = window(d, kind)
        for width in (1280, 640):
            active = policy(width, key)
            store = EvidenceStore(tmp / f"cap-{kind}-{width}")
            shots = Screenshotter(store, "bench", lambda a=active: a, lambda e: "x", lambda e: None)
            times, sizes = [], []
            for _ in range(20):
                ev = events_pb2.Event(severity=5, keyword=events_pb2.KeywordDetection(
                    category="suicide"))
                t = time.perf_counter()
                shots.handle(_Job(ev, WindowInfo("app", "t", False, wid), Screen(name)))
                times.append((time.perf_counter() - t) * 1000)
                sizes.append(store.waiting()[-1].size)
                store.remove(store.waiting()[-1])
            rows.append(f"| {kind} | {width} | {q(times, 50):.0f} | {q(times, 95):.0f} | "
                        f"{statistics.median(sizes) / 1024:,.0f} |")
        d.create_resource_object("window", wid).destroy()
        d.sync()
    return rows


def keystrokes(name: str, tmp: Path, key: bytes, wid: int,
               shots_on: bool) -> tuple[list[float], list[float], list[float]]:
    """(key lateness µs, event latency ms without picture, with picture)."""
    active = policy(1280, key)
    compiled = active.compiled("ks2")
    plain: list[float] = []
    pictured: list[float] = []
    store = EvidenceStore(tmp / f"keys-{shots_on}")
    started: dict[str, float] = {}

    def emitted(event: events_pb2.Event) -> str:
        t0 = started.pop(event.keyword.context, None)
        if t0 is not None:
            ms = (time.perf_counter() - t0) * 1000
            (pictured if event.screenshot_sha256 else plain).append(ms)
        return event.event_id or "x"

    shots = Screenshotter(store, "bench", lambda: active, emitted, lambda e: None)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ingest_pb2_grpc.add_CollectorServicer_to_server(Sink(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    up = EvidenceUploader(store, Ed25519PrivateKey.generate(), "bench",
                          lambda: grpc.insecure_channel(f"127.0.0.1:{port}"), idle_s=0.2)
    threads = [threading.Thread(target=shots.run), threading.Thread(target=up.run)]
    if shots_on:
        for t in threads:
            t.start()
    win = WindowInfo("chat", "chat", False, wid)

    def sink(alert, window):  # type: ignore[no-untyped-def]
        event = alert_event(alert, window, "pupil", active.policy)
        started[event.keyword.context] = time.perf_counter()
        if shots_on:
            shots.submit(event, "ks2", window, Screen(name))
        else:
            emitted(event)

    detector = KeystrokeDetector(lambda: compiled, sink)
    detector.focus(win)
    late = []
    start = time.perf_counter() + 0.05
    for i in range(KEYS):
        due = start + i / RATE
        while (left := due - time.perf_counter()) > 0:
            time.sleep(left)
        ch = LINE[i % len(LINE)]
        detector.key("<enter>" if ch == "\n" else ch)
        late.append((time.perf_counter() - due) * 1e6)
    if shots_on:
        shots.stop()
        up.stop()
        for t in threads:
            t.join()
    server.stop(None)
    return late, plain, pictured


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if not shutil.which("Xvfb"):
        sys.exit("bench_screenshot: Xvfb is not installed (scripts/test installs it)")
    proc, name = xvfb()
    tmp = Path(tempfile.mkdtemp(prefix="bench-shots-"))
    key = public_key_of(X25519PrivateKey.generate())
    try:
        d = display.Display(name)
        caps = capture_rows(name, tmp, key, d)
        wid = window(d, "text-like")
        runs = {on: keystrokes(name, tmp, key, wid, on) for on in (False, True)}
        d.close()
    finally:
        proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    machine = f"{platform.machine()}, Python {platform.python_version()}, {platform.system()}"
    lines = ["| window | max_width | capture-to-outbox p50 ms | p95 ms | sealed KiB |",
             "|---|---|---|---|---|", *caps, "",
             "| keystroke path | keys | p50 µs | p99 µs | max µs |", "|---|---|---|---|---|"]
    for on, (late, _, _) in runs.items():
        what = "screenshots taken and uploading" if on else "no screenshots"
        lines.append(f"| {what} | {len(late):,} | {q(late, 50):.0f} | {q(late, 99):.0f} | "
                     f"{max(late):,.0f} |")
    lines += ["", "| sink → event emitted | events | p50 ms | p95 ms | max ms |",
              "|---|---|---|---|---|"]
    for on, (_, plain, pictured) in runs.items():
        for label, vals in (("without a picture", plain), ("with a picture", pictured)):
            if vals:
                what = f"{label} ({'screenshots on' if on else 'screenshots off'})"
                lines.append(f"| {what} | {len(vals)} | {q(vals, 50):.1f} | {q(vals, 95):.1f} | "
                             f"{max(vals):.1f} |")
    print(machine)
    print("\n".join(lines))
    if args.write:
        out = Path(__file__).parent / "results" / "screenshot.md"
        head = (__doc__ or "").split("\n\n", 2)[2]
        load = os.getloadavg()[0]
        out.write_text("# Screenshot evidence\n\nCommand: `.venv/bin/python "
                       "bench/bench_screenshot.py --write`\n\n"
                       f"Machine: {machine}; load average {load:.2f} at the end.\n\n"
                       f"{head.strip()}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
