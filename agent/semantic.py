"""The semantic stage on a PC: the model the policy names, fetched once, loaded once.

    policy applied ─▶ ModelFetcher.want(sha256) ─FetchModel, 1 MiB chunks, resumable─▶
                      state/models/<sha256>.onnx (checked against the signed policy's hash)
    sensors ─▶ SemanticStage.judge_for(active policy, profile) ─▶ SemanticJudge
               (one model in the service for every session; never in the pupil's helper)

The stage is optional: without the ``semantic`` extra, before the model has arrived, or if
the file is wrong, ``judge_for`` answers None and the patterns work alone; the DSL sees why
in an AgentStatus (SEMANTIC_READY / SEMANTIC_UNAVAILABLE) and in ``status``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.clock import AgentClock
from agent.memory import give_back_memory
from agent.policy import ActivePolicy
from agent.transport import rpc_code, secure_channel
from protos import envelope, events_pb2, ingest_pb2, ingest_pb2_grpc
from rules.embed import SentenceModel, file_sha256
from rules.schema import PolicyError
from rules.semantic import Bank, Cancelled, SemanticJudge

log = logging.getLogger(__name__)

Emit = Callable[[events_pb2.Event], object]


def _status(kind: events_pb2.AgentStatus.Kind.ValueType, detail: str) -> events_pb2.Event:
    return events_pb2.Event(status=events_pb2.AgentStatus(kind=kind, detail=detail[:500]))


class SemanticStage:
    """The model and the policy's bank, made ready off the sensors' threads (``prepare``,
    on the model-fetch thread: embedding the bank takes seconds of CPU on a cold start),
    and one judge per (policy, profile). Until it is ready, ``judge_for`` answers None and
    typing goes on with the patterns alone; it never waits."""

    def __init__(self, models_dir: Path, emit: Emit) -> None:
        self.models_dir = models_dir
        self._emit = emit
        self._lock = threading.Lock()
        self._model: tuple[str, SentenceModel] | None = None
        self._bank: tuple[int, Bank] | None = None  # the policy version's exemplar vectors
        self._judges: dict[tuple[int, str], SemanticJudge] = {}
        self._refused: set[str] = set()  # model hashes that failed to load: reported once
        self.state = "off"  # for status and the heartbeat: off, waiting, ready, unavailable

    def path(self, sha256: str) -> Path:
        return self.models_dir / f"{sha256}.onnx"

    def wanted(self, active: ActivePolicy) -> str | None:
        """The model hash the policy needs on this PC, if its semantic stage is on."""
        sem = active.policy.semantic
        if sem is None or not sem.enabled:
            return None
        if not any(p.semantic for p in active.policy.profiles):
            return None
        return sem.model_sha256

    def prepare(self, active: ActivePolicy,
                cancelled: Callable[[], bool] = lambda: False) -> bool:  # fmt: skip
        """Load the model and embed the bank for this policy, if its file is here. Runs on
        the model-fetch thread; True when the stage is ready for this policy (or off)."""
        sha = self.wanted(active)
        if sha is None:
            self.state = "off"
            return True
        model = self._load(sha)
        if model is None:
            return False
        if self._bank is None or self._bank[0] != active.version:
            sem = active.policy.semantic
            assert sem is not None
            started = time.monotonic()
            try:
                bank = Bank(sem.exemplars, model, self.models_dir, cancelled)
            except Cancelled:
                return False
            give_back_memory()  # embedding the bank's batches freed heap to return
            with self._lock:
                self._bank = (active.version, bank)
            log.info("semantic.ready version=%d exemplars=%d seconds=%.1f", active.version,
                     len(sem.exemplars), time.monotonic() - started)  # fmt: skip
        self.state = "ready"
        return True

    def judge_for(self, active: ActivePolicy, profile: str) -> SemanticJudge | None:
        if self.wanted(active) is None:
            return None
        now = active.now()  # exemptions by the corrected clock, as the patterns' (agent/policy.py)
        with self._lock:
            judge = self._judges.get((active.version, profile))
            if judge is not None and (judge.valid_until is None or now < judge.valid_until):
                return judge if judge.on else None
            if self._model is None or self._bank is None or self._bank[0] != active.version:
                return None  # not prepared yet: the patterns work alone meanwhile
            judge = SemanticJudge(active.policy, profile, self._model[1], self._bank[1], now)
            self._judges = {k: v for k, v in self._judges.items() if k[0] == active.version}
            self._judges[(active.version, profile)] = judge
            return judge if judge.on else None

    def _load(self, sha: str) -> SentenceModel | None:
        if self._model is not None and self._model[0] == sha:
            return self._model[1]
        path = self.path(sha)
        if sha in self._refused or not path.exists():
            self.state = "waiting" if sha not in self._refused else "unavailable"
            return None
        try:
            model = SentenceModel(path, sha)
        except PolicyError as exc:  # the extra is missing, or the file is not the model
            self._refused.add(sha)
            self.state = "unavailable"
            log.error("semantic.unavailable sha256=%s reason=%s", sha, exc)
            self._emit(_status(events_pb2.AgentStatus.SEMANTIC_UNAVAILABLE, str(exc)))
            return None
        with self._lock:
            self._model = (sha, model)
        log.info("semantic.loaded sha256=%s", sha)
        return model


class ModelFetcher:
    """Fetches the model file the policy names, in chunks, resuming after any failure."""

    def __init__(self, stage: SemanticStage, emit: Emit, address: str, ca_pem: bytes,
                 agent_id: str, key: Ed25519PrivateKey,
                 current: Callable[[], ActivePolicy] | None = None, retry_s: float = 60.0,
                 timeout_s: float = 60.0, clock: AgentClock | None = None) -> None:  # fmt: skip
        self._clock = clock or AgentClock()  # signs requests by the collector's time
        self._stage = stage
        self._current = current  # the policy in force, for preparing the stage
        self._emit = emit
        self._address, self._ca, self._agent, self._key = address, ca_pem, agent_id, key
        self._retry_s, self._timeout_s = retry_s, timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._want: str | None = None
        self.last_error: str | None = None

    def want(self, sha256: str | None) -> None:
        self._want = sha256
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        """Fetch what the policy names, then prepare the stage; again at each new policy."""
        while not self._stop.is_set():
            sha = self._want
            done = sha is None or self._stage.path(sha).exists() or self.fetch(sha)
            if done and self._current is not None:
                done = self._stage.prepare(self._current(), self._stop.is_set)
            self._wake.wait(None if done else self._retry_s)
            self._wake.clear()

    def fetch(self, sha: str) -> bool:
        """Fetch the file to the end and check it. False: try again later."""
        target = self._stage.path(sha)
        part = target.with_suffix(".part")
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            with secure_channel(self._address, self._ca) as channel:
                stub = ingest_pb2_grpc.CollectorStub(channel)
                while not self._stop.is_set():
                    offset = part.stat().st_size if part.exists() else 0
                    unix_ms = self._clock.unix_ms()
                    request = ingest_pb2.ModelRequest(
                        agent_id=self._agent, sha256=sha, offset=offset, unix_ms=unix_ms,
                        signature=self._key.sign(envelope.model_request_payload(
                            self._agent, sha, offset, unix_ms)))  # fmt: skip
                    chunk = stub.FetchModel(request, timeout=self._timeout_s)
                    if offset >= chunk.size or not chunk.data:
                        break
                    with part.open("ab") as f:
                        f.write(chunk.data)
        except grpc.RpcError as exc:
            self.last_error = rpc_code(exc)
            log.warning("semantic.fetch_failed sha256=%s code=%s have=%d", sha, self.last_error,
                        part.stat().st_size if part.exists() else 0)  # fmt: skip
            return False
        except OSError as exc:  # a full disk: keep what is there, try later
            self.last_error = exc.strerror or type(exc).__name__
            log.error("semantic.fetch_failed sha256=%s error=%s", sha, self.last_error)
            return False
        if self._stop.is_set():
            return False
        digest = file_sha256(part)
        if digest != sha:
            part.unlink()
            self.last_error = "hash mismatch"
            log.error("semantic.fetch_refused sha256=%s got=%s", sha, digest)
            self._emit(_status(events_pb2.AgentStatus.SEMANTIC_UNAVAILABLE,
                               f"the model received has SHA-256 {digest}, not {sha}"))  # fmt: skip
            return False
        part.replace(target)
        self.last_error = None
        log.info("semantic.fetched sha256=%s bytes=%d", sha, target.stat().st_size)
        self._emit(_status(events_pb2.AgentStatus.SEMANTIC_READY, f"model {sha[:12]}"))
        return True
