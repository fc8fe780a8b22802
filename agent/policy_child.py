"""Loading and compiling a policy in a child process, so the service keeps only the result.

    service ──request (pickle, stdin)──▶ python -m agent.policy_child
                                          load_policy / verify_bundle (agent/policy_slim.py)
                                          / Compiled(...)
            ◀──result (pickle, stdout)── the Policy, or one matcher's tables
                                          (or nothing: ``("keep", request)`` only keeps it)

Reading the TOML files, expanding 3,000 patterns into 80,000 phrases and building the
automaton allocate several times what they keep, and the Python allocator cannot hand the
space back once the kept objects sit among the freed ones: a service that compiled in its
own heap stayed at the peak (162 MB on a PC's first start, against 117 once restarted).
Here the child takes the peak and exits; the service unpickles the finished objects into
fresh memory. Should the child fail (no interpreter to start, killed), the work is done
in the service as before, and a warning says so: monitoring never waits for it.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from rules.schema import Policy, PolicyError

log = logging.getLogger(__name__)

COMMAND = [sys.executable, "-m", "agent.policy_child"]
TIMEOUT_S = 900.0  # compiling the shipped lists: 10 s of CPU, 80 s at load 10 on 2 CPUs
LOW = "--low"  # the child yields the CPU to the pupil's programs (work nobody waits for)


class ChildFailed(Exception):
    """The child gave no answer (it could not start, crashed or was killed)."""


def in_child(request: tuple[Any, ...], keep: Path | None = None, low: bool = False) -> Any:
    """Run one request in a child process; raise what the child raised (a ``PolicyError``
    or ``BundleError`` with the same message), or ``ChildFailed``. The answer is unpickled
    as it streams from the pipe: no copy of it, whole, ever sits in the service. The child
    also keeps the answer at ``keep`` (agent/policy_cache.py) when given; ``low``: it runs
    at a lower CPU priority."""
    with tempfile.TemporaryFile() as errors:
        try:
            # (Windows has no nice: a priority class instead; not run there yet)
            below = getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0) if low else 0
            child = subprocess.Popen([*COMMAND, LOW] if low else COMMAND, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=errors,
                                     creationflags=below)  # our own module
        except OSError as exc:
            raise ChildFailed(f"cannot start {COMMAND[0]}: {exc.strerror}") from None
        assert child.stdin is not None and child.stdout is not None
        hung = threading.Timer(TIMEOUT_S, child.kill)  # a stuck child: its answer ends short
        hung.start()
        try:
            with child.stdin:  # the child reads all of it before it answers
                keep_at = None if keep is None else str(keep)
                pickle.dump((request, keep_at), child.stdin, pickle.HIGHEST_PROTOCOL)
            with child.stdout:
                kind, value = pickle.load(child.stdout)  # noqa: S301  # written by our own child
        except Exception as exc:  # a broken pipe or a cut answer: one failure
            child.kill()
            child.wait()
            hung.cancel()
            errors.seek(0)
            last = errors.read().decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise ChildFailed(f"{type(exc).__name__} (exit status {child.returncode}): "
                              f"{last[0][:300]}") from None  # fmt: skip
        child.wait()  # (it keeps the answer after giving it: the timer still bounds that)
        hung.cancel()
    if kind == "error":
        from rules.bundle import BundleError

        cls, message = value
        raise (BundleError if cls == "BundleError" else PolicyError)(message)
    return value


def compiled_tables(policy: Policy, profile: str, now: datetime,
                    keep: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """The matcher tables of ``Compiled(policy, profile, now)``, built in a child, which
    also keeps them at ``keep`` (agent/policy_cache.py) when given."""
    try:
        tables: dict[str, Any] = in_child(("compile", policy, profile, now), keep)
    except ChildFailed as exc:
        from rules.compile import Compiled

        log.warning("policy.child_failed step=compile profile=%s reason=%s", profile, exc)
        return Compiled(policy, profile, now).tables()
    return tables


def kept_only(request: tuple[Any, ...], keep: Path, low: bool = False) -> bool:
    """Answer ``request`` in a child that keeps the answer at ``keep`` and gives back
    nothing: the service reads it from there when it needs it. True when it is kept."""
    try:
        in_child(("keep", request), keep, low=low)
    except ChildFailed as exc:
        log.warning("policy.child_failed step=keep:%s reason=%s", request[0], exc)
        return False
    return keep.exists()  # (a full disk keeps nothing)


def loaded(request: tuple[Any, ...], keep: Path | None = None) -> tuple[int, Policy, str] | None:
    """``("shipped",)``, ``("last_good", data, key)`` or ``("bundle", data, key,
    installed)``, answered in a child (which keeps the answer at ``keep`` when given):
    (version, policy, the digest of its files), or None (no last good bundle). Keys are raw
    Ed25519 public key bytes."""
    try:
        answer: tuple[int, Policy, str] | None = in_child(request, keep)
    except ChildFailed as exc:
        log.warning("policy.child_failed step=%s reason=%s", request[0], exc)
        answer = _answer(request)
    return answer


def _answer(request: tuple[Any, ...]) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from agent.policy_slim import for_a_pc
    from rules import bundle
    from rules.compile import Compiled
    from rules.load import DEFAULT_DIR, load_files, read_folder

    match request:
        case ("shipped",):
            files = read_folder(DEFAULT_DIR)
            policy = load_files(files, prefix=f"{DEFAULT_DIR}/")
            return 0, for_a_pc(policy), bundle.matcher_digest(files)
        case ("last_good", bytes(data), bytes(key)):  # policy.json's bytes, re-verified
            saved = bundle.verify_bundle(data, Ed25519PublicKey.from_public_bytes(key))
            return saved.version, for_a_pc(saved.policy), bundle.matcher_digest(saved.files)
        case ("bundle", bytes(data), bytes(key), installed):
            got = bundle.verify_bundle(data, Ed25519PublicKey.from_public_bytes(key), installed)
            return got.version, for_a_pc(got.policy), bundle.matcher_digest(got.files)
        case ("compile", policy, str(profile), now):
            return Compiled(policy, profile, now, compact=False).tables()
    raise PolicyError(f"unknown request {request[0]!r}")


def main() -> int:
    if LOW in sys.argv[1:] and hasattr(os, "nice"):  # (not on Windows: normal priority)
        os.nice(10)
    # (from the service that started us)
    request, keep = pickle.load(sys.stdin.buffer)  # noqa: S301
    value, only_keep = None, request[0] == "keep"
    try:
        value = _answer(request[1] if only_keep else request)
        answer: tuple[str, Any] = ("ok", None if only_keep else value)
    except PolicyError as exc:  # BundleError is one
        answer, keep = ("error", (type(exc).__name__, str(exc))), None
    sys.stdout.buffer.write(pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    if keep is not None and value is not None:  # for the next start (agent/policy_cache.py)
        from agent import policy_cache

        policy_cache.write(Path(keep), pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
