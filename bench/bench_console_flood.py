"""Does a flood of console requests slow ingest? Ingest batch latency at a steady event rate,
with and without clients hammering the console with cookie-less requests (issue 16).

    .venv/bin/python bench/bench_console_flood.py                  # 10,000 events/s, 16 clients
    .venv/bin/python bench/bench_console_flood.py --seconds 20 --rounds 2
    .venv/bin/python bench/bench_console_flood.py --collector-code /tmp/main-src   # another tree

Starts `safeguard-collector serve --web 127.0.0.1:0` as its own process, enrols simulated agents
(real keys, real signatures, real TLS gRPC) and has them ship pre-signed batches at a fixed
pace (agents x batch / interval = events/s), timing each batch from send to acknowledgement
(sent after the DuckDB commit). Phases alternate quiet / flooded; in a flooded phase, flood
processes (their own processes, so they do not share this one's interpreter) run clients that
each GET console pages without a cookie as fast as the console answers. Reports batch round
trip p50/p99 per phase and the console requests answered per second.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import BIN, Agent, enrol_all, machine, make_events, signed_frames  # noqa: E402

from collector import admin  # noqa: E402
from protos import ingest_pb2, ingest_pb2_grpc  # noqa: E402

PATHS = ("/", "/login", "/incidents", "/agents")


def flood(url: str, clients: int, seconds: float, done: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """`clients` cookie-less clients, each GETting pages one after another for `seconds`."""

    async def main() -> int:
        count = 0
        stop = time.monotonic() + seconds

        async def client(i: int) -> None:
            nonlocal count
            jar = aiohttp.DummyCookieJar()  # never sends a cookie back
            conn = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(cookie_jar=jar, connector=conn) as s:
                n = i
                while time.monotonic() < stop:
                    async with s.get(url + PATHS[n % len(PATHS)], allow_redirects=False) as r:
                        await r.read()
                    n += 1
                    count += 1

        await asyncio.gather(*(client(i) for i in range(clients)))
        return count

    done.put(asyncio.run(main()))


async def paced(
    address: str, ca: bytes, agents: list[Agent], batch: int, interval: float, seconds: float
) -> list[float]:
    """Each agent sends one batch every `interval` seconds for `seconds`; round trips."""
    rtts: list[float] = []
    chan = grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(ca))
    stub = ingest_pb2_grpc.CollectorStub(chan)

    async def one(i: int, agent: Agent) -> None:
        call = stub.Ship()
        await call.write(ingest_pb2.AgentMessage(hello=ingest_pb2.Hello(
            agent_id=agent.agent_id, agent_version="bench", hostname="bench")))
        challenge = (await call.read()).challenge
        from protos import envelope

        proof = agent.key.sign(envelope.hello_proof_payload(agent.agent_id, challenge.nonce))
        await call.write(ingest_pb2.AgentMessage(proof=ingest_pb2.Proof(signature=proof)))
        welcome = (await call.read()).welcome
        frames = [ingest_pb2.AgentMessage.FromString(f)
                  for f in signed_frames(agent, welcome.nonce, batch)]
        await asyncio.sleep(interval * i / len(agents))  # spread the agents over the interval
        start = time.perf_counter()
        for k, frame in enumerate(frames):
            due = start + k * interval
            if due - start > seconds:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent = time.perf_counter()
            await call.write(frame)
            answer = await call.read()
            assert answer.WhichOneof("msg") == "ack", answer
            rtts.append(time.perf_counter() - sent)
        await call.done_writing()

    await asyncio.gather(*(one(i, a) for i, a in enumerate(agents)))
    await chan.close()
    return rtts


def collector_command(code: str) -> list[str]:
    """`safeguard-collector`, or the same CLI from another source tree (the venv's editable
    install would otherwise win over PYTHONPATH)."""
    if not code:
        return [str(BIN / "safeguard-collector")]
    launch = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in "
              f"repr(f)]; sys.path.insert(0, {code!r}); from collector.cli import main; "
              "sys.exit(main())")  # fmt: skip
    return [sys.executable, "-c", launch]


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(len(s) * p))] * 1000, 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=int, default=10_000, help="events/s")
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.1, help="seconds between an agent's batches")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--flood-processes", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20.0, help="per phase")
    p.add_argument("--rounds", type=int, default=2, help="quiet + flooded pairs")
    p.add_argument("--collector-code", default="", help="run the collector from this source "
                   "tree (PYTHONPATH), e.g. an export of main, to compare with it")  # fmt: skip
    args = p.parse_args()
    batch = max(1, round(args.rate * args.interval / args.agents))
    tmp = Path(tempfile.mkdtemp(prefix="sg-flood-"))
    data = tmp / "collector"
    subprocess.run([*collector_command(args.collector_code), "init", "--data", data],
                   check=True, capture_output=True)  # fmt: skip
    proc = subprocess.Popen(
        [*collector_command(args.collector_code), "--log-level", "WARNING", "serve", "--data",
         data, "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0"], stdout=subprocess.PIPE,
        text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        address = f"127.0.0.1:{int(line.split('127.0.0.1:')[1].split(',')[0])}"
        url = proc.stdout.readline().split("console: ", 1)[1].strip().rstrip("/")
        ca = (data / "ca.pem").read_bytes()
        token = admin.request(data / "admin.sock", "token",
                              {"ttl_s": 3600, "uses": args.agents * args.rounds * 2})["token"]
        per_agent = int(args.seconds / args.interval + 2) * batch
        print(f"{machine()}\n{args.rate} events/s: {args.agents} agents x {batch} events every "
              f"{args.interval} s; {args.clients} flood clients in {args.flood_processes} "
              f"processes; {args.seconds} s a phase", flush=True)
        rows = []
        ctx = multiprocessing.get_context("spawn")
        for phase in ["quiet", "flooded"] * args.rounds:
            agents = asyncio.run(enrol_all(address, ca, token, args.agents))
            for a in agents:
                make_events(a, per_agent, 0.05)
            floods, done = [], ctx.Queue()
            if phase == "flooded":
                each = args.clients // args.flood_processes
                floods = [ctx.Process(target=flood, args=(url, each, args.seconds + 3, done))
                          for _ in range(args.flood_processes)]
                for f in floods:
                    f.start()
                time.sleep(2)  # the flood under way before ingest is timed
            t0 = time.perf_counter()
            rtts = asyncio.run(paced(address, ca, agents, batch, args.interval, args.seconds))
            took = time.perf_counter() - t0
            answered = sum(done.get(timeout=120) for _ in floods)
            for f in floods:
                f.join(60)
            row = {"phase": phase, "batches": len(rtts), "events_per_s": round(
                len(rtts) * batch / took), "p50_ms": pct(rtts, 0.5), "p99_ms": pct(rtts, 0.99),
                "max_ms": pct(rtts, 1.0),
                "console_req_per_s": round(answered / (args.seconds + 3)) if floods else 0}
            rows.append(row)
            print(row, flush=True)
        quiet = [r["p99_ms"] for r in rows if r["phase"] == "quiet"]
        flooded = [r["p99_ms"] for r in rows if r["phase"] == "flooded"]
        print(f"p99 quiet {quiet} flooded {flooded}: flooded/quiet "
              f"{sum(flooded) / len(flooded) / (sum(quiet) / len(quiet)):.2f}", flush=True)
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
