"""`safeguard-install agent`: one command line per classroom PC.

Steps (each undone if a later one fails): the code in its own venv with only the agent's
dependencies (DuckDB must not import there); `safeguard-install` on root's PATH (command.py);
the state folder, 0700 root; enrolment with the collector (the agent makes its key on this PC,
0600); the system service; the keyboard helper started at every graphical login (XDG
autostart); enabled and started. The collector is checked for reachability before anything is
written, so an unreachable one changes nothing. `safeguard-install test-alert` (alert.py) then
checks that this PC's alerts reach the collector.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from installer import command, manifest, pyenv, units
from installer.context import Context, run_tool
from installer.layout import AUTOSTART, COMMAND_LINK, unit_name
from installer.transaction import InstallError, Transaction

log = logging.getLogger(__name__)

EXIT_UNREACHABLE = 3  # as safeguard-agent: worth retrying later
ROOT_OWNER = (0, 0)


@dataclass(frozen=True)
class AgentOptions:
    collector: str
    ca_pem: bytes
    state: PurePosixPath

    def settings(self) -> dict[str, object]:
        return {
            "collector": self.collector,
            "state": str(self.state),
            "ca_sha256": hashlib.sha256(self.ca_pem).hexdigest(),
        }


def read_ca(path: Path) -> bytes:
    try:
        pem = path.read_bytes()
        ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))
    except OSError as exc:
        raise InstallError(
            f"cannot read the CA file {path}: {exc.strerror}",
            fix="copy the collector's /etc/safeguard/ca.pem to this PC",
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise InstallError(
            f"{path} is not a PEM certificate",
            fix="give --ca the collector's ca.pem (/etc/safeguard/ca.pem)",
        ) from None
    return pem


def split_address(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InstallError(f"--collector {text!r} is not HOST:PORT (e.g. collector.school:50051)")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
    raise InstallError(
        f"cannot reach the collector at {address}: {reason}; nothing changed",
        fix="check the address, that the collector runs (`safeguard-install doctor` there) and "
        f"that its firewall lets this PC in on port {port}; then run this again",
        code=EXIT_UNREACHABLE,
    )


def install(ctx: Context, opts: AgentOptions, token: str | None) -> int:
    layout = ctx.layout
    existing = manifest.load(layout, "agent")
    if existing is not None:
        manifest.refuse_other_settings(existing, opts.settings())
        print(
            "the agent is already installed and enrolled here with these settings; nothing "
            "changed (the token was not used). Check it with `safeguard-install doctor`."
        )
        return 0
    ctx.require_root()
    state = layout.host(opts.state)
    kept = _kept_identity(state, opts.collector)
    if kept is None:
        if token is None:
            raise InstallError("an enrolment token is needed", fix="give --token-file FILE or -")
        check_reachable(opts.collector)
    source = None if ctx.python_env else pyenv.find_source(ctx.source)
    with Transaction() as tx:
        env, version = pyenv.ensure(layout, tx, "agent", source or Path(), ctx.python_env)
        linked = command.ensure(layout, tx, "agent")
        tx.mkdir(state, 0o700, ROOT_OWNER)
        agent_id = kept or _enrol(env, state, opts, token or "")
        _lock_down(state)
        exe = layout.bin("agent", "safeguard-agent")
        tx.write(
            layout.host(layout.unit("agent")), units.agent_unit(exe, opts.state).encode(), 0o644
        )
        tx.write(layout.host(AUTOSTART), units.helper_desktop(exe, opts.state).encode(), 0o644)
        ctx.services.enable(tx, "agent")
        manifest.save(
            layout,
            tx,
            manifest.Manifest(
                role="agent",
                version=version,
                settings=opts.settings(),
                account="root",
                account_created=False,
                data_created=kept is None,
                external_env=str(ctx.python_env.absolute()) if ctx.python_env else "",
                command_link=str(COMMAND_LINK) if linked else "",
            ),
        )
        started = not ctx.no_start and ctx.services.start(tx, "agent")
    log.info("agent.installed version=%s agent_id=%s started=%s", version, agent_id, started)
    how = (
        "started"
        if started
        else "enabled, not started (--no-start)"
        if ctx.no_start
        else f"enabled, NOT started: {ctx.services.why_not_live()}"
    )
    print(f"""Safeguard agent {version} installed.
  agent id        {agent_id}{" (kept from an earlier install)" if kept else ""}
  collector       {opts.collector} (school CA pinned)
  service         {unit_name("agent")}: {how}
  keyboard helper starts at every graphical login ({AUTOSTART})
  state           {opts.state} (0700 root; key 0600)
  command         {command.report_line(linked)}""")
    if linked:
        print("Check that its alerts reach the collector: sudo safeguard-install test-alert")
    return 0


def _kept_identity(state: Path, collector: str) -> str | None:
    """The agent id of an enrolment kept by `uninstall --keep-data`; None if not enrolled."""
    identity = state / "identity.json"
    if not identity.exists():
        if state.exists() and any(state.iterdir()):
            raise InstallError(
                f"{state} is not empty and holds no agent identity; nothing changed",
                fix="choose another --state folder, or empty this one",
            )
        return None
    try:
        data = json.loads(identity.read_text())
        agent_id, enrolled_with = str(data["agent_id"]), str(data["collector"])
    except (OSError, ValueError, KeyError) as exc:
        raise InstallError(
            f"{identity} is unreadable ({exc}); nothing changed",
            fix=f"move {state} away and install again",
        ) from None
    if enrolled_with != collector:
        raise InstallError(
            f"{state} holds an enrolment with {enrolled_with}, not {collector}; nothing changed",
            fix="`safeguard-install uninstall agent --purge` to forget it, or use --state",
        )
    return agent_id


def _enrol(env: Path, state: Path, opts: AgentOptions, token: str) -> str:
    ca_file = state / ".install-ca.pem"
    ca_file.write_bytes(opts.ca_pem)
    try:
        result = run_tool(
            env,
            "safeguard-agent",
            "enroll",
            "--state",
            state,
            "--collector",
            opts.collector,
            "--ca",
            ca_file,
            "--token-file",
            "-",
            stdin=token + "\n",
            timeout=90,
        )
    finally:
        ca_file.unlink(missing_ok=True)
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        message = message.removeprefix("safeguard-agent: error: ")
        unreachable = result.returncode == EXIT_UNREACHABLE
        raise InstallError(
            f"enrolment failed: {message}; nothing changed",
            fix="check the address and firewall, then retry"
            if unreachable
            else "make a new token on the collector (`safeguard-install agent-line`) and retry",
            code=EXIT_UNREACHABLE if unreachable else 1,
        )
    return json.loads((state / "identity.json").read_text())["agent_id"]  # type: ignore[no-any-return]


def _lock_down(state: Path) -> None:
    """State readable by the service only: the folder 0700, every file in it 0600."""
    state.chmod(0o700)
    for path in state.iterdir():
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) != 0o600:
            path.chmod(0o600)
