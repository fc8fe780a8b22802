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
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType

from agent import __version__
from agent.enrol import EnrolError, enrol
from agent.identity import StateDir, StateError, check_ca, load_identity, load_key
from agent.outbox import Outbox, OutboxError
from agent.service import Service, ServiceConfig
from agent.transport import AddressError
from protos import events_pb2

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
    p.set_defaults(log_level="info")

    p = command("test-alert", "Queue a test alert that travels all the way to the collector.")
    p.add_argument("--note", default="", metavar="TEXT")

    command("status", "Show this agent's identity and what is waiting in its outbox.")
    return parser


def _read_token(args: argparse.Namespace) -> str:
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
    token = _read_token(args)
    try:
        ca_pem = Path(args.ca).read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read CA file {args.ca}: {exc.strerror}") from None
    check_ca(ca_pem, f"CA file {args.ca}")
    ident = enrol(StateDir(args.state), args.collector, token, ca_pem, force=args.force)
    print(f"enrolled as {ident.agent_id} with collector {ident.collector}; state in {args.state}")
    return 0


def _run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("agent.signal name=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return Service(StateDir(args.state), ServiceConfig(heartbeat_s=args.heartbeat)).run(stop)


def _test_alert(args: argparse.Namespace) -> int:
    state = StateDir(args.state)
    ident = load_identity(state)
    load_key(state, ident)  # a technician's check: the key the shipper will sign with is usable
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = f"uid {os.getuid()}"
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
    state = StateDir(args.state)
    ident = load_identity(state)
    outbox = Outbox.open(state.outbox, ident.agent_id)
    try:
        counts = outbox.counts()
    finally:
        outbox.close()
    head = counts.head
    print(f"agent_id:     {ident.agent_id}")
    print(f"collector:    {ident.collector}")
    print(f"enrolled_at:  {ident.enrolled_at}")
    print(f"running:      {'yes' if state.is_locked() else 'no'}")
    print(f"pending:      {counts.pending}  (queued, not yet chained)")
    print(f"unacked:      {counts.unacked}  (chained and signed, waiting for the collector)")
    print(f"acked_seq:    {counts.base[0] if counts.base else 'none (never connected)'}")
    print(f"chain_head:   {f'{head[0]} {head[1].hex()}' if head else 'none'}")
    return 0


_COMMANDS = {"enroll": _enroll, "run": _run, "test-alert": _test_alert, "status": _status}


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
    try:
        return _COMMANDS[args.command](args)
    except EnrolError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE if exc.retryable else EXIT_FAILED
    except (StateError, AddressError, OutboxError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (sqlite3.Error, OSError) as exc:
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
