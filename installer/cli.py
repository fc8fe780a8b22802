"""safeguard-install: put the collector or an agent on this machine as a service, and keep it
working (upgrade, uninstall, status, doctor), and check a PC end to end (test-alert).

Exit codes: 0 done; 1 refused or failed, with the machine left as it was (message and fix on
stderr); 2 usage; 3 the collector could not be reached (worth retrying); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from installer import PROG, agent_install, alert, collector_install, doctor, uninstall, upgrade
from installer.context import Context
from installer.layout import DEFAULT_AGENT_STATE, ROLES, Layout, target_path
from installer.transaction import InstallError

log = logging.getLogger(__name__)


def _address(text: str) -> str:
    try:
        host, port = agent_install.split_address(text)
    except InstallError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _folder(text: str) -> str:
    try:
        return str(target_path(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds up to 3600")
    return value


def _role(text: str) -> str:
    if text not in ROLES:
        raise argparse.ArgumentTypeError(f"{text!r} is not collector or agent")
    return text


def _install_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--python-env",
        type=Path,
        metavar="VENV",
        help="use this existing virtual environment instead of building one",
    )
    p.add_argument(
        "--source",
        metavar="TREE_OR_WHEEL",
        help="what pip installs (default: the source tree this installer is in)",
    )
    p.add_argument("--no-start", action="store_true", help="install and enable, start nothing")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="install into this throwaway root (tests): no systemctl, no useradd",
    )
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING"])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("collector", help="install the collector as a service")
    c.add_argument(
        "--data",
        required=True,
        type=_folder,
        help="its data folder, e.g. "
        "/var/lib/safeguard/collector (kept as it is if already initialised)",
    )
    c.add_argument("--listen", type=_address, default="0.0.0.0:50051", help="agents' gRPC/TLS")
    c.add_argument("--web", type=_address, default="0.0.0.0:8443", help="the DSL console")
    c.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="HOST",
        help="a name or address agents dial (repeatable; in the TLS certificate)",
    )
    c.add_argument("--admin", default="dsl", metavar="USER", help="the first DSL account")
    c.add_argument("--school", default="School", help="the school's name, on the certificates")
    c.add_argument(
        "--room-uses",
        type=int,
        default=30,
        metavar="N",
        help="how many PCs the printed agent line's token may enrol",
    )
    c.add_argument("--room-ttl", default="24h", help="how long that token lasts")
    _install_options(c)

    a = sub.add_parser("agent", help="install and enrol the agent on this PC")
    a.add_argument("--collector", required=True, type=_address, metavar="HOST:PORT")
    token = a.add_mutually_exclusive_group()
    token.add_argument("--token", help="the enrolment token (shows in the process list)")
    token.add_argument("--token-file", metavar="FILE", help="read the token from FILE, - for stdin")
    a.add_argument("--ca", required=True, type=Path, metavar="FILE", help="the school CA (ca.pem)")
    a.add_argument("--state", type=_folder, default=str(DEFAULT_AGENT_STATE), metavar="DIR")
    _install_options(a)

    t = sub.add_parser("agent-line", help="print an agent install line with a fresh room token")
    t.add_argument("--uses", type=int, default=30, metavar="N")
    t.add_argument("--ttl", default="24h")

    u = sub.add_parser("upgrade", help="reinstall the code; keep identity, outbox and data")
    u.add_argument("roles", nargs="*", type=_role, metavar="ROLE", help="collector, agent")
    _install_options(u)

    r = sub.add_parser("uninstall", help="remove services and code (asks first)")
    r.add_argument("roles", nargs="*", type=_role, metavar="ROLE", help="collector, agent")
    r.add_argument("--yes", action="store_true", help="do not ask")
    keep = r.add_mutually_exclusive_group()
    keep.add_argument("--keep-data", action="store_true", help="keep data and state (default)")
    keep.add_argument("--purge", action="store_true", help="also delete data, state and account")

    sub.add_parser("status", help="check what is installed here (no network)")
    sub.add_parser("doctor", help="check everything, network included, with fixes")

    t = sub.add_parser(
        "test-alert",
        help="on a PC: send a test alert and wait until the collector acknowledges it",
    )
    t.add_argument(
        "--timeout", type=_seconds, default=30.0, metavar="S", help="how long to wait (30)"
    )
    t.add_argument("--note", default="safeguard-install test-alert", metavar="TEXT")
    return p


def _token(args: argparse.Namespace) -> str | None:
    if args.token is not None:
        print(
            f"{PROG}: warning: a token given with --token shows in the process list; prefer "
            "--token-file FILE (or - for stdin)",
            file=sys.stderr,
        )
        text = str(args.token)
    elif args.token_file is None:
        return None
    elif args.token_file == "-":  # noqa: S105 -- "-" names stdin, it is not a secret
        text = sys.stdin.readline()
    else:
        try:
            text = Path(args.token_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InstallError(f"cannot read the token file {args.token_file}: {exc}") from None
    token = text.strip()
    if not token or any(c.isspace() for c in token):
        raise InstallError(
            "the enrolment token is empty or not a single word",
            fix="make one on the collector: `safeguard-install agent-line`",
        )
    return token


def _run(args: argparse.Namespace) -> int:
    root = args.root.absolute()
    opts = vars(args)
    ctx = Context(
        Layout(root), opts.get("python_env"), opts.get("source"), bool(opts.get("no_start"))
    )
    if args.command == "collector":
        names = tuple(args.name)
        return collector_install.install(
            ctx,
            collector_install.CollectorOptions(
                data=target_path(args.data),
                listen=args.listen,
                web=args.web,
                names=names,
                admin=args.admin,
                school=args.school,
                room_uses=args.room_uses,
                room_ttl=args.room_ttl,
            ),
        )
    if args.command == "agent":
        options = agent_install.AgentOptions(
            collector=args.collector,
            ca_pem=agent_install.read_ca(args.ca),
            state=target_path(args.state),
        )
        return agent_install.install(ctx, options, _token(args))
    if args.command == "agent-line":
        return collector_install.print_agent_line(ctx, args.uses, args.ttl)
    if args.command == "upgrade":
        return upgrade.upgrade(ctx, args.roles)
    if args.command == "uninstall":
        return uninstall.uninstall(ctx, args.roles, args.yes, args.purge)
    if args.command == "test-alert":
        return alert.test_alert(ctx, args.timeout, args.note)
    return doctor.doctor(ctx, network=args.command == "doctor")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed usage or --help
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        return _run(args)
    except InstallError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        if exc.fix:
            print(f"{PROG}: fix: {exc.fix}", file=sys.stderr)
        return exc.code
    except ValueError as exc:  # a value no unit or path can hold, caught before any change
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the transaction has rolled back what it did
        print(f"{PROG}: error: {exc}; what was done has been undone", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the transaction has rolled back what it did
        print(f"{PROG}: interrupted; what was done has been undone", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
