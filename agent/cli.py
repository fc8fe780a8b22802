"""`safeguard-agent`: enroll, run, test-alert, status.

Exit codes: 0 done; 1 refused or bad input (message on stderr); 2 usage (from argparse);
3 the collector could not be reached (worth retrying); 70 an internal error (a bug: report it).
"""

from __future__ import annotations

import os

# gRPC's C core logs TLS and connection noise to stderr, read once when grpc is imported; our
# own messages say what went wrong in one line. Errors from the core still show.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import argparse
import getpass
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from agent import __version__

# The per-login keyboard helper runs this module too, in every desktop session: it must stay
# small, so the pipeline (gRPC, rules, protobuf, SQLite outbox) and even the identity module
# (cryptography: about 14 MB) are imported only by the commands that use them, below.
if TYPE_CHECKING:
    from agent.identity import StateDir
    from rules.schema import Policy

log = logging.getLogger(__name__)

PROG = "safeguard-agent"
EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_INTERNAL = 1, 3, 70
_LEVELS = ("debug", "info", "warning", "error")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 86_400:
        raise argparse.ArgumentTypeError("must be more than 0 and less than a day")
    return value


def _limit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 100_000:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 100000")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be from 1 to 1000")
    return value


def _folder(text: str) -> Path:
    return Path(text).expanduser().absolute()  # the service may chdir; logs show where


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Safeguarding monitor agent.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--state",
            required=True,
            type=_folder,
            metavar="DIR",
            help="the agent's state folder (key, identity, outbox)",
        )
        p.add_argument("--log-level", choices=_LEVELS, default="warning")
        return p

    p = command("enroll", "Generate this PC's key and enrol it with the collector.")
    p.add_argument("--collector", required=True, metavar="HOST:PORT")
    token = p.add_mutually_exclusive_group(required=True)
    token.add_argument("--token", help="the enrolment token (visible in the process list)")
    token.add_argument("--token-file", metavar="FILE", help='file holding the token; "-": stdin')
    p.add_argument(
        "--ca",
        required=True,
        type=Path,
        metavar="FILE",
        help="the school CA certificate (the collector's ca.pem) to pin",
    )
    p.add_argument("--force", action="store_true", help="enrol again, replacing the identity")

    p = command("run", "Run the agent: record events, ship them, send heartbeats.")
    p.add_argument("--heartbeat", type=_positive, default=60.0, metavar="SECONDS")
    p.add_argument("--keep-acked-days", type=_positive, default=7.0, metavar="DAYS",
                   help="keep acknowledged events this long, to send again to a collector "
                   "restored from a backup (default 7)")  # fmt: skip
    p.add_argument("--keep-acked-events", type=int, default=20_000, metavar="N",
                   help="and at most this many of them (default 20000)")
    p.set_defaults(log_level="info")

    w = p.add_argument_group(
        "watchdog", "the agent's own limits, checked every --watchdog-check seconds; acted on "
        "when over for --watchdog-sustained checks in a row (inside the systemd unit's "
        "MemoryMax and CPUQuota, which stay the hard stop)")
    w.add_argument("--watchdog-check", type=_positive, default=20.0, metavar="SECONDS",
                   help="seconds between checks (default 20)")
    w.add_argument("--watchdog-sustained", type=_count, default=3, metavar="N",
                   help="checks in a row over a limit before acting (default 3: one minute)")
    w.add_argument("--sensor-cpu-limit", type=_limit, default=20.0, metavar="PERCENT",
                   help="a sensor over this share of one CPU core is stopped until the next "
                   "policy (default 20)")  # fmt: skip
    w.add_argument("--helper-memory-limit", type=_limit, default=150.0, metavar="MB",
                   help="a per-login helper over this resident memory is restarted "
                   "(default 150)")  # fmt: skip
    w.add_argument("--service-memory-limit", type=_limit, default=250.0, metavar="MB",
                   help="the service over this is logged and shown in the heartbeat "
                   "(default 250)")  # fmt: skip
    w.add_argument("--no-watchdog", action="store_true", help="measure and enforce nothing")

    p.add_argument(
        "--keyboard-socket",
        type=_folder,
        metavar="PATH",
        help="where per-login keyboard helpers connect "
        "(default /run/safeguard-agent/keyboard.sock)",
    )

    p = sub.add_parser(
        "keyboard-helper",
        help="Capture keys in this desktop session for the agent service (started at login).",
        description="Capture keys in this desktop session and hand them to the agent service "
        "over its local socket. Runs as the logged-in user; keeps no files.",
    )
    p.add_argument("--state", type=_folder, metavar="DIR", help="accepted for the installer; "
                   "the helper cannot and does not read the state folder")  # fmt: skip
    p.add_argument("--socket", type=_folder, metavar="PATH",
                   help="the service's keyboard socket (default: $SAFEGUARD_KEYBOARD_SOCKET "
                   "or /run/safeguard-agent/keyboard.sock)")  # fmt: skip
    p.add_argument("--log-level", choices=_LEVELS, default="warning")

    p = sub.add_parser("usb", help="USB devices and the policy's decision for each.")
    usb = p.add_subparsers(dest="usb_command", required=True, metavar="USB_COMMAND")
    text = "Show plugged-in USB devices, their ids and the decision the policy would take."
    p = usb.add_parser("list", help=text, description=text)
    p.add_argument(
        "--state",
        type=_folder,
        metavar="DIR",
        help="use this agent's policy in force (default: the shipped policy)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--log-level", choices=_LEVELS, default="warning")
    p.set_defaults(command="usb list")

    p = command("test-alert", "Queue a test alert that travels all the way to the collector.")
    p.add_argument("--note", default="", metavar="TEXT")

    command("status", "Show this agent's identity and what is waiting in its outbox.")
    return parser


def _read_token(args: argparse.Namespace) -> str:
    from agent.identity import StateError

    if args.token is not None:
        print(
            f"{PROG}: warning: a token given with --token shows in the process list; "
            "prefer --token-file FILE (or - for stdin)",
            file=sys.stderr,
        )
        text = str(args.token)
    elif args.token_file == "-":  # noqa: S105  # "-" names stdin; it is not a secret
        text = sys.stdin.readline()
    else:
        try:
            text = Path(args.token_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read token file {args.token_file}: {exc}") from None
    token = text.strip()
    if not token or any(c.isspace() for c in token):
        raise StateError("the token is empty or not a single word")
    return token


def _enroll(args: argparse.Namespace) -> int:
    from agent.identity import StateDir, StateError, check_ca

    token = _read_token(args)
    try:
        ca_pem = Path(args.ca).read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read CA file {args.ca}: {exc.strerror}") from None
    check_ca(ca_pem, f"CA file {args.ca}")
    from agent.enrol import enrol

    ident = enrol(StateDir(args.state), args.collector, token, ca_pem, force=args.force)
    print(f"enrolled as {ident.agent_id} with collector {ident.collector}; state in {args.state}")
    return 0


def _one_malloc_arena() -> None:
    """glibc gives each thread that allocates under contention its own malloc arena and keeps
    freed memory in each; the service has about 20 threads (sensors, shipper, gRPC's own) that
    mostly sleep, and Python allocates under the GIL anyway. One arena measured 2 MB less
    RSS (bench/results/agent.md). Set before any thread starts; MALLOC_ARENA_MAX still wins."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: leave malloc as it is
        ctypes.CDLL("libc.so.6").mallopt(-8, 1)  # M_ARENA_MAX (malloc.h)


def _run(args: argparse.Namespace) -> int:
    _one_malloc_arena()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("agent.signal name=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from agent.identity import StateDir
    from agent.selfwatch import WatchdogLimits
    from agent.service import Service, ServiceConfig

    limits = WatchdogLimits(check_s=args.watchdog_check, sustained=args.watchdog_sustained,
                            sensor_cpu_percent=args.sensor_cpu_limit,
                            helper_rss_mb=args.helper_memory_limit,
                            service_rss_mb=args.service_memory_limit,
                            enabled=not args.no_watchdog)  # fmt: skip
    config = ServiceConfig(heartbeat_s=args.heartbeat, keyboard_socket=args.keyboard_socket,
                           keep_acked_s=args.keep_acked_days * 86_400,
                           max_kept=args.keep_acked_events, watchdog=limits)  # fmt: skip
    return Service(StateDir(args.state), config).run(stop)


def _keyboard_helper(args: argparse.Namespace) -> int:
    from agent.helper import run_helper
    from agent.helper_protocol import socket_path

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    signal.signal(signal.SIGINT, lambda _s, _f: stop.set())
    return run_helper(socket_path(args.socket), stop)


def _test_alert(args: argparse.Namespace) -> int:
    from agent.identity import StateDir, load_identity, load_key

    state = StateDir(args.state)
    ident = load_identity(state)
    load_key(state, ident)  # a technician's check: the key the shipper will sign with is usable
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = f"uid {os.getuid()}"
    from agent.outbox import Outbox
    from protos import events_pb2

    event = events_pb2.Event(
        severity=1, account=user, test_alert=events_pb2.TestAlert(requested_by=user, note=args.note)
    )
    outbox = Outbox.open(state.outbox, ident.agent_id)
    try:
        event_id = outbox.put(event)
    finally:
        outbox.close()
    print(event_id)
    return 0


def _status(args: argparse.Namespace) -> int:
    from agent.identity import StateDir, load_identity

    state = StateDir(args.state)
    ident = load_identity(state)
    from agent.outbox import Counts, Outbox
    from agent.outbox_file import CorruptOutbox

    damaged = ""
    try:
        counts = Outbox.peek(state.outbox)  # read-only: status changes nothing
    except CorruptOutbox as exc:
        damaged, counts = str(exc), Counts(0, 0, None, None)
    head = counts.head
    print(f"agent_id:     {ident.agent_id}")
    print(f"collector:    {ident.collector}")
    print(f"enrolled_at:  {ident.enrolled_at}")
    print(f"running:      {'yes' if state.is_locked() else 'no'}")
    print(f"pending:      {counts.pending}  (queued, not yet chained)")
    print(f"unacked:      {counts.unacked}  (chained and signed, waiting for the collector)")
    print(f"acked_seq:    {counts.base[0] if counts.base else 'none (never connected)'}")
    print(f"kept:         {counts.kept}  (acknowledged, kept to send again to a collector "
          "restored from a backup)")  # fmt: skip
    print(f"chain_head:   {f'{head[0]} {head[1].hex()}' if head else 'none'}")
    print(f"dropped:      {counts.dropped}  (given up at the outbox's bound, oldest and least"
          " severe first; each counted in a DROPPED event)")
    print(f"policy_version: {_policy_version(state)}")
    from agent import shipping_state

    for line in shipping_state.status_lines(shipping_state.read(state.shipping)):
        print(line)
    if damaged:
        print(f"outbox:       DAMAGED ({damaged}); the service keeps it aside and starts a new "
              "one when it next starts, and reports that to the collector")  # fmt: skip
        return 1
    return 0


def _usb_list(args: argparse.Namespace) -> int:
    import json

    from agent.usb_devices import format_devices, list_devices
    from rules.load import load_policy

    if args.state is None:
        policy = load_policy()
    else:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        from agent.identity import StateDir, load_identity
        from agent.policy import PolicyHolder

        state = StateDir(args.state)
        ident = load_identity(state)
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(ident.policy_public_key))
        policy = PolicyHolder(state.policy, key).current().policy
    rows = list_devices(policy)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        sys.stdout.write(format_devices(rows))
    return 0


def _policy_version(state: StateDir) -> str:
    """The version of the last good bundle on disk, verified; "none" before the first one."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from agent.identity import load_identity
    from rules import bundle
    from rules.schema import PolicyError

    ident = load_identity(state)
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(ident.policy_public_key))
        saved = bundle.load_last_good(state.policy, key)
    except (PolicyError, ValueError) as exc:
        return f"none (the saved bundle does not verify: {exc})"
    if saved is None:
        return "none"
    return f"{saved.version}\nsemantic:     {_semantic_state(state, saved.policy)}"


def _semantic_state(state: StateDir, policy: Policy) -> str:
    """Whether the model the policy names is on this PC (by name and size; the service
    checks its hash before loading it)."""
    sem = policy.semantic
    if sem is None or not sem.enabled:
        return "off (the policy has no semantic stage switched on)"
    import importlib.util  # only here: the helper's imports are kept light

    path = state.root / "models" / f"{sem.model_sha256}.onnx"
    runtime = ("" if importlib.util.find_spec("onnxruntime") is not None else
               "; but onnxruntime is not installed, so the stage cannot run (install the "
               "'semantic' extra)")  # fmt: skip
    if path.exists():
        return f"model {sem.model_sha256[:12]} on this PC ({path.stat().st_size} bytes){runtime}"
    part = path.with_suffix(".part")
    have = part.stat().st_size if part.exists() else 0
    return f"waiting for model {sem.model_sha256[:12]} from the collector ({have} bytes so far)"


_COMMANDS = {
    "enroll": _enroll,
    "run": _run,
    "keyboard-helper": _keyboard_helper,
    "usb list": _usb_list,
    "test-alert": _test_alert,
    "status": _status,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage or --help already
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if args.command == "keyboard-helper":  # before the pipeline's imports (see the top)
        return _guarded(args, (), (OSError,))
    import sqlite3

    from agent.enrol import EnrolError
    from agent.identity import StateError
    from agent.outbox import OutboxError
    from agent.transport import AddressError

    return _guarded(args, (EnrolError, StateError, AddressError, OutboxError),
                    (sqlite3.Error, OSError))  # fmt: skip


def _guarded(args: argparse.Namespace, refusals: tuple[type[Exception], ...],
             failures: tuple[type[Exception], ...]) -> int:  # fmt: skip
    """Run the command; `refusals` print their message (exit 3 if retryable, else 1),
    `failures` their kind and message (exit 1), anything else is an internal error (70)."""
    try:
        return _COMMANDS[args.command](args)
    except refusals as exc:
        retryable = getattr(exc, "retryable", None)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE if retryable else EXIT_FAILED
    except failures as exc:
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # never a traceback for the user; the log keeps it
        log.debug("internal error", exc_info=True)
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} "
            "(run with --log-level debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
