"""`safeguard-install collector`: the school's collector as a sandboxed service, ready for agents.

Steps (each undone if a later one fails): the service account; the code in its own venv;
`safeguard-install` on root's PATH (command.py); `safeguard-collector init --exist-ok` (an
initialised data folder is kept as it is); the first DSL account with a one-time password; the
data folder handed to the service account; a public copy of the school CA; the unit, enabled
and started (and answering). Last, a multi-use enrolment token for a room: the collector cannot
revoke a token, so it is made only once nothing can fail any more.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from installer import accounts, command, manifest, pyenv, units
from installer.checks import socket_answers
from installer.context import Context, run_ok
from installer.layout import COMMAND_LINK, SERVICE_ACCOUNT, Layout, unit_name
from installer.transaction import InstallError, Transaction, chown_tree

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60  # for a started collector to answer on its admin socket


@dataclass(frozen=True)
class CollectorOptions:
    data: PurePosixPath
    listen: str = "0.0.0.0:50051"
    web: str = "0.0.0.0:8443"
    names: tuple[str, ...] = ()
    admin: str = "dsl"
    school: str = "School"
    room_uses: int = 30
    room_ttl: str = "24h"

    def settings(self) -> dict[str, object]:
        return {
            "data": str(self.data),
            "listen": self.listen,
            "web": self.web,
            "names": list(self.names),
            "admin": self.admin,
            "school": self.school,
        }


@dataclass(frozen=True)
class RoomToken:
    token: str
    uses: int
    ttl: str


def is_collector(folder: Path) -> bool:
    return (folder / "collector.duckdb").exists() and (folder / "ca.pem").exists()


def install(ctx: Context, opts: CollectorOptions) -> int:
    layout = ctx.layout
    existing = manifest.load(layout, "collector")
    if existing is not None:
        manifest.refuse_other_settings(existing, opts.settings())
        print(
            f"the collector is already installed here with these settings; nothing changed.\n"
            f"  check it:             safeguard-install doctor\n"
            f"  an agent install line: safeguard-install agent-line --uses {opts.room_uses}"
        )
        return 0
    ctx.require_root()
    data = layout.host(opts.data)
    found = is_collector(data)
    if data.exists() and not found and any(data.iterdir()):
        raise InstallError(
            f"{data} is not empty and holds no collector; nothing changed",
            fix="choose a new --data folder, or empty this one",
        )
    source = None if ctx.python_env else pyenv.find_source(ctx.source)
    with Transaction() as tx:
        account, made = accounts.ensure(layout, tx, SERVICE_ACCOUNT, "Safeguard monitor collector")
        env, version = pyenv.ensure(layout, tx, "collector", source or Path(), ctx.python_env)
        if not found:
            tx.mkdir(data, 0o700)
        names = [arg for name in opts.names for arg in ("--name", name)]
        run_ok(
            env,
            "safeguard-collector",
            "init",
            "--data",
            data,
            "--school",
            opts.school,
            "--exist-ok",
            *names,
        )
        linked = command.ensure(layout, tx, "collector")
        password = _first_admin(env, data, opts.admin, tx, undo_needed=found)
        chown_tree(data, account.owner)
        tx.write(layout.host(layout.public_ca), (data / "ca.pem").read_bytes(), 0o644)
        exe = layout.bin("collector", "safeguard-collector")
        unit = units.collector_unit(exe, opts.data, opts.listen, opts.web, account.name)
        tx.write(layout.host(layout.unit("collector")), unit.encode(), 0o644)
        ctx.services.enable(tx, "collector")
        manifest.save(
            layout,
            tx,
            manifest.Manifest(
                role="collector",
                version=version,
                settings=opts.settings(),
                account=account.name,
                account_created=made,
                data_created=not found,
                external_env=str(ctx.python_env.absolute()) if ctx.python_env else "",
                admin=opts.admin,
                command_link=str(COMMAND_LINK) if linked else "",
            ),
        )
        started = not ctx.no_start and ctx.services.start(tx, "collector")
        if started:
            _wait_for_admin_socket(ctx, data)
        # The room token is the last step: the collector has no way to take a token back, so
        # nothing that could still fail (and undo the install) comes after it. It goes through
        # the running collector's admin socket, or, when it is not started, into the database.
        room = RoomToken(
            _token(env, data, opts.room_uses, opts.room_ttl), opts.room_uses, opts.room_ttl
        )
        chown_tree(data, account.owner)  # a database written by root here goes back to the account
    log.info("collector.installed version=%s data=%s started=%s", version, opts.data, started)
    _report(ctx, opts, version, account.name, started, password, room, linked)
    return 0


def _wait_for_admin_socket(ctx: Context, data: Path) -> None:
    """Until the started collector answers on its admin socket (the token goes through it):
    a collector that does not come up fails the install, which undoes it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while socket_answers(data / "admin.sock") is not True:
        state = ctx.services.is_active("collector")
        if state == "failed" or time.monotonic() > deadline:
            raise InstallError(
                f"{unit_name('collector')} was started but did not come up within "
                f"{START_TIMEOUT_S}s (systemd says {state}); nothing changed",
                fix=f"`journalctl -u {unit_name('collector')} -n 50` says why; then run this again",
            )
        time.sleep(0.25)


def _first_admin(
    env: Path, data: Path, username: str, tx: Transaction, undo_needed: bool
) -> str | None:
    """Create the first DSL account; None when it already exists (its password unchanged)."""
    listing = run_ok(env, "safeguard-collector", "user", "list", "--data", data)
    if any(line.split()[:1] == [username] for line in listing.splitlines()):
        return None
    password = secrets.token_urlsafe(15)  # 20 characters; printed once, stored only hashed
    run_ok(
        env,
        "safeguard-collector",
        "user",
        "add",
        username,
        "--data",
        data,
        "--role",
        "dsl",
        "--name",
        "Designated Safeguarding Lead",
        "--password-file",
        "-",
        "--must-change",  # the console makes the DSL choose their own at first login
        "--enrol-at-login",  # and set up their second factor: no one else sees its secret
        stdin=password + "\n",
    )
    if undo_needed:  # a data folder we made is removed whole; in a kept one, disable the account
        tx.on_undo(f"user {username}", lambda: _disable(env, data, username))
    return password


def _disable(env: Path, data: Path, username: str) -> None:
    run_ok(env, "safeguard-collector", "user", "disable", username, "--data", data)


def _token(env: Path, data: Path, uses: int, ttl: str) -> str:
    out = run_ok(
        env,
        "safeguard-collector",
        "token",
        "--data",
        data,
        "--uses",
        str(uses),
        "--ttl",
        ttl,
        "--note",
        "room install line",
        "--format",
        "json",
    )
    return str(json.loads(out)["token"])


def agent_address(opts_names: tuple[str, ...], listen: str) -> str:
    """The HOST:PORT agents dial: the first --name (the certificate holds it), else the listen
    address, else (listening on every address) this host's name."""
    host, _, port = listen.rpartition(":")
    if opts_names:
        host = opts_names[0]
    elif host in ("0.0.0.0", "[::]", ""):  # noqa: S104 -- comparing, not binding
        host = socket.gethostname()
    return f"{host}:{port}"


def console_url(opts_names: tuple[str, ...], web: str) -> str:
    host, _, port = web.rpartition(":")
    loopback = host in ("127.0.0.1", "localhost", "[::1]")
    if host in ("0.0.0.0", "[::]", ""):  # noqa: S104 -- comparing, not binding
        host = opts_names[0] if opts_names else socket.gethostname()
    return f"{'http' if loopback else 'https'}://{host}:{port}/"


def agent_line(layout: Layout, names: tuple[str, ...], listen: str, room: RoomToken) -> str:
    """The line for each PC of a room. A fresh PC has no safeguard-install yet: it runs the
    installer from a copy of this project's source tree, as the collector's machine did."""
    return (
        f"# enrolment token for up to {room.uses} PCs, valid for {room.ttl}. Each PC needs "
        "python3-venv and pip's package\n"
        "# index (offline PCs: docs/installer.md). Copy this project's source tree to the PC,\n"
        f"# and {layout.public_ca} into the tree's folder as ca.pem; in that folder, run:\n"
        f"echo {room.token} | sudo /usr/bin/python3 -m installer agent "
        f"--collector {agent_address(names, listen)} --ca ca.pem --token-file -"
    )


def _report(
    ctx: Context,
    opts: CollectorOptions,
    version: str,
    user: str,
    started: bool,
    password: str | None,
    room: RoomToken,
    linked: bool,
) -> None:
    layout = ctx.layout
    if started:
        service = f"{unit_name('collector')}: started, running as {user}"
    elif ctx.no_start:
        service = f"{unit_name('collector')}: installed and enabled, not started (--no-start)"
    else:
        service = (
            f"{unit_name('collector')}: installed and enabled, NOT started: "
            f"{ctx.services.why_not_live()}; it starts at the next boot"
        )
    account = (
        f"{opts.admin}  one-time password: {password}  (shown only now; change it at first login)"
        if password
        else f"{opts.admin} already existed; password unchanged"
    )
    print(f"""Safeguard collector {version} installed.
  service      {service}
  data         {opts.data} (0700, owner {user})
  agents       {agent_address(opts.names, opts.listen)} (gRPC over TLS, school CA pinned)
  DSL console  {console_url(opts.names, opts.web)}
  school CA    {layout.public_ca}  (give it to every agent; DSLs' browsers may trust it)
  DSL account  {account}
  command      {command.report_line(linked)}

Agent install line for a room:
{agent_line(layout, opts.names, opts.listen, room)}
More lines later: sudo safeguard-install agent-line --uses N""")


def print_agent_line(ctx: Context, uses: int, ttl: str) -> int:
    """`safeguard-install agent-line`: a fresh multi-use token for the next room."""
    layout = ctx.layout
    found = manifest.require(layout, "collector")
    ctx.require_root()
    settings = found.settings
    data = layout.host(str(settings["data"]))
    env = layout.host(layout.current("collector"))
    token = _token(env, data, uses, ttl)  # through the running collector's admin socket if up
    account = accounts.lookup(layout, found.account)
    chown_tree(data, account.owner if account else None)  # a stopped collector: files stay its
    names = tuple(str(n) for n in settings.get("names", []) or [])  # type: ignore[attr-defined]
    print(agent_line(layout, names, str(settings["listen"]), RoomToken(token, uses, ttl)))
    return 0
