"""Collector throughput and latency over real TLS gRPC on loopback.

    .venv/bin/python bench/bench_pipeline.py                 # 100 and 1,000 agents
    .venv/bin/python bench/bench_pipeline.py --agents 100 --events 2000 --profile

Starts `safeguard-collector serve` as its own process, enrols N simulated agents (real keys,
real signatures), and has every agent open its stream (hello, proof of its key, welcome), then,
once all are open, stream its pre-chained events at once, in signed batches, waiting for each
acknowledgement (which the collector sends only after the DuckDB commit). Reports events/s
verified and committed once the streams are open (sustained: a school's agents stay
connected), the same including the time to open them all (a trust's PCs reconnecting at once
after a collector restart), batch round trips, loopback bytes per event, collector RSS and CPU,
and checks the stored count is exact. With --profile, py-spy samples the collector.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector import admin  # noqa: E402 -- after the path is set
from protos import envelope, events_pb2, ingest_pb2, ingest_pb2_grpc  # noqa: E402

BIN = Path(sys.executable).parent


@dataclass
class Agent:
    agent_id: str
    key: Ed25519PrivateKey
    raws: list[bytes] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)


def loopback_bytes() -> int:
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            return int(rest.split()[0])  # received on lo == sent on lo
    return 0


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """The collector and its verifier processes."""
    return [proc, *proc.children(recursive=True)]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def rss_bytes(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def make_events(agent: Agent, n: int, detections: float, spread_ms: int = 0) -> None:
    """Heartbeats with a share of keyword detections, chained as an agent's outbox would;
    observed spread_ms apart up to now (0: all at once)."""
    h = envelope.genesis(agent.agent_id)
    now = int(time.time() * 1000)
    every = round(1 / detections) if detections > 0 else 0
    for seq in range(1, n + 1):
        event = events_pb2.Event(
            seq=seq, observed_unix_ms=now - (n - seq) * spread_ms, account="pupil.k2",
            event_id=os.urandom(8).hex(),
        )
        if every and seq % every == 0:
            event.severity = 3
            event.keyword.CopyFrom(events_pb2.KeywordDetection(
                category="bullying", list="keywords/bullying", terms=["nobody likes you"], score=60,
                context="and honestly nobody likes you so", application="chrome",
                window_title="Docs - Homework", source="keyboard",
            ))
        else:
            event.heartbeat.CopyFrom(events_pb2.Heartbeat(
                sensors=[events_pb2.SensorHealth(name=s, state="running")
                         for s in ("keyboard", "browser", "usb")],
                policy_version="1", outbox_pending=0, cpu_percent=0.3,
                rss_bytes=52_000_000, agent_version="0.1.0",
            ))
        raw = envelope.event_bytes(event)
        h = envelope.link(h, raw)
        agent.raws.append(raw)
        agent.hashes.append(h)


async def enrol_all(address: str, ca: bytes, token: str, n: int) -> list[Agent]:
    async with grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(ca)) as chan:
        stub = ingest_pb2_grpc.CollectorStub(chan)

        async def one(i: int) -> Agent:
            key = Ed25519PrivateKey.generate()
            pub = key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            reply = await stub.Enrol(
                ingest_pb2.EnrolRequest(
                    token=token,
                    public_key=pub,
                    hostname=f"pc-{i:05d}",
                    os="bench",
                    agent_version="bench",
                    proof=key.sign(envelope.enrol_proof_payload(token, pub)),
                )
            )
            return Agent(reply.agent_id, key)

        agents: list[Agent] = []
        for start in range(0, n, 100):
            agents += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 100))))
        return agents


def signed_frames(agent: Agent, nonce: bytes, batch: int) -> Iterator[bytes]:
    """The agent's events as signed batches for one stream, serialised as on the wire."""
    total = len(agent.raws)
    first = 1
    while first <= total:
        last = min(total, first + batch - 1)
        prev = envelope.genesis(agent.agent_id) if first == 1 else agent.hashes[first - 2]
        b = envelope.make_batch(agent.key, agent.agent_id, nonce, first, prev,
                                agent.raws[first - 1 : last], agent.hashes[first - 1 : last])
        yield ingest_pb2.AgentMessage(batch=b).SerializeToString()
        first = last + 1


def _wire(message: ingest_pb2.AgentMessage | bytes) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


async def ship(
    address: str, ca: bytes, agents: list[Agent], batch: int, window: int,
    sign_live: bool = False,
) -> tuple[float, float, float, list[float]]:
    """Every agent opens its stream, then, once all are open, streams all its events; returns
    (time the first stream was asked for, time all were open, end, batch round trips).

    A real agent's outbox holds its events chained and ready, and signing a batch for a stream
    is one Ed25519 signature. So each simulated agent signs and serialises its batches once its
    stream is open, before the clock starts: the simulated agents share the collector's two
    cores, and on a school's network they run on other machines. --sign-live does it with the
    clock running instead."""
    rtts: list[float] = []
    welcomed = 0
    all_open = asyncio.Event()
    opened_at = 0.0
    channels = [
        grpc.aio.secure_channel(
            address,
            grpc.ssl_channel_credentials(ca),
            options=[("grpc.use_local_subchannel_pool", 1)],
        )
        for _ in range(min(8, len(agents)))
    ]

    async def one(i: int, agent: Agent) -> None:
        call = channels[i % len(channels)].stream_stream(
            "/safeguard.v1.Collector/Ship",
            request_serializer=_wire,
            response_deserializer=ingest_pb2.CollectorMessage.FromString,
        )()
        await call.write(
            ingest_pb2.AgentMessage(
                hello=ingest_pb2.Hello(
                    agent_id=agent.agent_id, agent_version="bench", hostname="bench"
                )
            )
        )
        challenge = (await call.read()).challenge
        proof = agent.key.sign(envelope.hello_proof_payload(agent.agent_id, challenge.nonce))
        await call.write(ingest_pb2.AgentMessage(proof=ingest_pb2.Proof(signature=proof)))
        welcome = (await call.read()).welcome
        frames = signed_frames(agent, welcome.nonce, batch)
        if not sign_live:
            frames = iter(list(frames))
        nonlocal welcomed, opened_at
        welcomed += 1
        if welcomed == len(agents):
            opened_at = time.perf_counter()
            all_open.set()
        await all_open.wait()
        sent: list[float] = []
        acked = 0
        total = len(agent.raws)
        room = asyncio.Semaphore(window)  # batches in flight, as the shipper keeps

        async def reader() -> None:
            nonlocal acked
            while acked < total:
                answer = await call.read()
                assert answer.WhichOneof("msg") == "ack", answer
                rtts.append(time.perf_counter() - sent.pop(0))
                acked = answer.ack.last_seq
                room.release()

        read_task = asyncio.create_task(reader())
        for frame in frames:
            await room.acquire()
            sent.append(time.perf_counter())
            await call.write(frame)
        await read_task
        await call.done_writing()

    start = time.perf_counter()
    await asyncio.gather(*(one(i, a) for i, a in enumerate(agents)))
    end = time.perf_counter()
    for chan in channels:
        await chan.close()
    return start, opened_at, end, rtts


def run_scenario(
    n_agents: int, per_agent: int, batch: int, window: int, profile: Path | None,
    detections: float, sign_live: bool = False, verifiers: int | None = None,
) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="sg-bench-"))
    data = tmp / "collector"
    subprocess.run(
        [BIN / "safeguard-collector", "init", "--data", data], check=True, capture_output=True
    )
    proc = subprocess.Popen(
        [
            BIN / "safeguard-collector",
            "--log-level",
            "WARNING",
            "serve",
            "--data",
            data,
            "--listen",
            "127.0.0.1:0",
            *(["--verifiers", str(verifiers)] if verifiers is not None else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        port = int(line.split("127.0.0.1:")[1].split(",")[0])
        address = f"127.0.0.1:{port}"
        ca = (data / "ca.pem").read_bytes()
        token = admin.request(data / "admin.sock", "token", {"ttl_s": 3600, "uses": n_agents})[
            "token"
        ]
        agents = asyncio.run(enrol_all(address, ca, token, n_agents))
        for a in agents:
            make_events(a, per_agent, detections)
        collector = psutil.Process(proc.pid)
        procs = tree(collector)
        cpu0 = cpu_seconds(procs)
        main0 = cpu_seconds([collector])
        lo0 = loopback_bytes()
        spy = None
        if profile:
            spy = subprocess.Popen(
                [
                    BIN / "py-spy",
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(profile),
                    "--threads",
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        peak_rss = [rss_bytes(procs)]
        rss_before = peak_rss[0]

        async def sampled() -> tuple[float, float, float, list[float]]:
            async def sample() -> None:
                while True:
                    peak_rss.append(rss_bytes(procs))
                    await asyncio.sleep(0.2)

            task = asyncio.create_task(sample())
            try:
                return await ship(address, ca, agents, batch, window, sign_live)
            finally:
                task.cancel()

        own0 = os.times()
        start, opened, end, rtts = asyncio.run(sampled())
        own1 = os.times()
        lo1 = loopback_bytes()
        cpu1 = cpu_seconds(procs)
        main1 = cpu_seconds([collector])
        if spy:
            spy.send_signal(2)
            spy.wait(30)
        total = n_agents * per_agent
        stored = admin.request(data / "admin.sock", "count", {})["events"]
        rtts.sort()
        wall = end - opened
        return {
            "agents": n_agents,
            "detections": detections,
            "events": total,
            "stored": stored,
            "batch": batch,
            "seconds": round(wall, 2),
            "events_per_s": round(total / wall),
            "open_s": round(opened - start, 2),
            "events_per_s_with_opens": round(total / (end - start)),
            "batch_rtt_p50_ms": round(statistics.median(rtts) * 1000, 1),
            "batch_rtt_p99_ms": round(rtts[int(len(rtts) * 0.99)] * 1000, 1),
            "loopback_bytes_per_event": round((lo1 - lo0) / total, 1),
            "payload_bytes_per_event": round(statistics.mean(len(r) for r in agents[0].raws), 1),
            # The collector's processes together, and of that its main process (gRPC, writer).
            "collector_cpu_s": round(cpu1 - cpu0, 1),
            "collector_main_cpu_s": round(main1 - main0, 1),
            "verifiers": len(procs) - 1,
            # The simulated agents share the two cores with the collector: what they cost.
            "agents_cpu_s": round((own1.user - own0.user) + (own1.system - own0.system), 1),
            "collector_rss_before_mb": round(rss_before / 2**20, 1),
            "collector_peak_rss_mb": round(max(peak_rss) / 2**20, 1),
            "collector_rss_after_mb": round(rss_bytes(procs) / 2**20, 1),
            "db_mb": round((data / "collector.duckdb").stat().st_size / 2**20, 1),
        }
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


def latency_scenario(seconds: float, rate: float, load_agents: int) -> dict[str, object]:
    """A real agent (`safeguard-agent run`): time from an event entering its outbox to the
    collector's commit of it (the ack follows the commit on the same stream), with or without
    simulated agents loading the collector at the same time."""
    import threading

    from agent.outbox import Outbox

    tmp = Path(tempfile.mkdtemp(prefix="sg-bench-"))
    data, state = tmp / "collector", tmp / "agent"
    subprocess.run([BIN / "safeguard-collector", "init", "--data", data], check=True,
                   capture_output=True)
    proc = subprocess.Popen(
        [BIN / "safeguard-collector", "--log-level", "WARNING", "serve", "--data", data,
         "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    agent = None
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        address = f"127.0.0.1:{int(line.split('127.0.0.1:')[1].split(',')[0])}"
        token = admin.request(data / "admin.sock", "token",
                              {"ttl_s": 3600, "uses": load_agents + 1})["token"]
        subprocess.run([BIN / "safeguard-agent", "enroll", "--state", state, "--collector",
                        address, "--token-file", "-", "--ca", data / "ca.pem"],
                       input=token, text=True, check=True, capture_output=True)
        agent = subprocess.Popen([BIN / "safeguard-agent", "run", "--state", state,
                                  "--log-level", "warning"])
        agent_id = json.loads((state / "identity.json").read_text())["agent_id"]
        ca = (data / "ca.pem").read_bytes()
        loader = None
        if load_agents:
            sims = asyncio.run(enrol_all(address, ca, token, load_agents))
            for a in sims:
                make_events(a, max(1, int(seconds * 60_000 / load_agents)), 0.05)
            loader = threading.Thread(target=lambda: asyncio.run(ship(address, ca, sims, 500, 2)))
            loader.start()
        outbox = Outbox.open(state / "outbox.sqlite", agent_id)
        ids = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ids.append(outbox.put(events_pb2.Event(
                severity=4, test_alert=events_pb2.TestAlert(requested_by="bench"))))
            time.sleep(1 / rate)
        outbox.close()
        if loader:
            loader.join()
        waited = time.monotonic() + 60
        rows: list[dict[str, object]] = []
        while time.monotonic() < waited:
            rows = [r for r in admin.request(data / "admin.sock", "events",
                                             {"agent_id": agent_id, "limit": 100_000})
                    if "test_alert" in r["event"]]
            if len(rows) >= len(ids):
                break
            time.sleep(0.5)
        delays = sorted(int(r["received_ms"]) - int(r["event"]["observed_unix_ms"])
                        for r in rows)
        return {
            "scenario": "outbox_to_commit", "load_agents": load_agents, "events": len(ids),
            "arrived": len(rows),
            "p50_ms": delays[len(delays) // 2], "p99_ms": delays[int(len(delays) * 0.99)],
            "max_ms": delays[-1],
        }
    finally:
        if agent:
            agent.terminate()
            agent.wait(60)
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total // 2**30} GiB, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, nargs="*", default=[100, 1000])
    p.add_argument("--events", type=int, default=0, help="events per agent (default: 1M total)")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--window", type=int, default=2, help="batches in flight per agent")
    p.add_argument("--profile", action="store_true", help="py-spy the collector (first scenario)")
    p.add_argument("--detections", type=float, nargs="+", default=[0.05, 1.0],
                   help="share of events that are keyword detections (the rest heartbeats)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sign-live", action="store_true",
                   help="simulated agents sign and serialise batches with the clock running")
    p.add_argument("--verifiers", type=int, default=None,
                   help="verifier processes in the throughput runs (default: the collector's)")
    p.add_argument("--latency-seconds", type=float, default=10.0)
    p.add_argument("--latency-load", type=int, nargs="*", default=[0, 100],
                   help="simulated agents loading the collector while latency is measured")
    args = p.parse_args()
    print(f"machine: {machine()}")
    scenarios = [(n, share) for share in args.detections for n in args.agents]
    for i, (n, share) in enumerate(scenarios):
        per_agent = args.events or max(1, 1_000_000 // n)
        prof = (
            ROOT / "bench" / "results" / f"pipeline-profile-{n}.txt"
            if args.profile and i == 0
            else None
        )
        result = run_scenario(n, per_agent, args.batch, args.window, prof, share, args.sign_live,
                              args.verifiers)
        print(
            json.dumps(result) if args.json else "  ".join(f"{k}={v}" for k, v in result.items()),
            flush=True,
        )
        if result["stored"] != result["events"]:
            print("ERROR: stored count differs from events sent", file=sys.stderr)
            return 1
    for load in args.latency_load:
        result = latency_scenario(args.latency_seconds, 20.0, load)
        print(json.dumps(result) if args.json else
              "  ".join(f"{k}={v}" for k, v in result.items()), flush=True)
        if result["arrived"] != result["events"]:
            print("ERROR: a real agent's events did not all arrive", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
