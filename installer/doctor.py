"""`safeguard-install status` and `doctor`: is everything installed here working, and if not,
what to do. `status` checks this machine only; `doctor` also dials the collector (TLS with the
pinned CA, then gRPC), checks the policy and the clock. Exit 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from installer import accounts, manifest, pyenv
from installer.agent_install import split_address
from installer.checks import (
    Check,
    clock,
    denied,
    fail,
    grpc_probe,
    lock_held,
    needs_root,
    ok,
    private,
    tls,
)
from installer.checks import socket_answers as answers
from installer.collector_install import agent_address
from installer.context import Context, run_tool
from installer.layout import AUTOSTART, ROLES, unit_name
from installer.transaction import InstallError

log = logging.getLogger(__name__)


def doctor(ctx: Context, network: bool) -> int:
    found = [m for r in ROLES if (m := manifest.load(ctx.layout, r)) is not None]
    if not found:
        raise InstallError(
            "nothing from safeguard-install is installed here",
            fix="install with `safeguard-install collector ...` or `agent ...`",
        )
    failed = unchecked = 0
    for m in found:
        checks = (_collector if m.role == "collector" else _agent)(ctx, m, network)
        print(f"{m.role} {m.version}")
        for c in checks:
            print(f"  [{c.status:^7}] {c.name}: {c.detail}")
            if c.fix and c.status != "ok":
                print(f"            fix: {c.fix}")
            log.info("doctor.check role=%s name=%s status=%s", m.role, c.name, c.status)
        failed += sum(c.failed for c in checks)
        unchecked += sum(c.needs_root for c in checks)
    if failed:
        print(f"{failed} check(s) failed: see fix: above")
    if unchecked:  # not a pass: what only root can read was not looked at
        command = "doctor" if network else "status"
        print(
            f"{unchecked} check(s) need root to read private files: run it again with sudo "
            f"(`sudo safeguard-install {command}`)"
        )
    if not failed and not unchecked:
        print("all checks passed")
    return 1 if failed or unchecked else 0


def _common(ctx: Context, m: manifest.Manifest) -> tuple[Path, list[Check]]:
    role, layout = m.role, ctx.layout
    env = layout.host(layout.current(role))
    checks: list[Check] = []
    try:
        version = pyenv.check(env, role)
        pyenv.require_shared_python(layout, env)
        checks.append(ok("code", f"version {version} in {layout.current(role)}"))
    except InstallError as exc:
        checks.append(
            fail("code", str(exc), exc.fix or "`safeguard-install upgrade` reinstalls it")
        )
    unit, wants = layout.host(layout.unit(role)), layout.host(layout.wants(role))
    if unit.exists() and wants.is_symlink():
        checks.append(ok("unit", f"{unit_name(role)} installed and enabled at boot"))
    else:
        checks.append(
            fail(
                "unit",
                f"{unit_name(role)} is missing or not enabled",
                f"`safeguard-install uninstall {role} --keep-data`, then install "
                "again with the same options",
            )
        )
    return env, checks


def _running(
    ctx: Context, role: str, running: bool | None, how: str, foreground: str, probe: Path
) -> Check:
    """`running` is None when this user may not open `probe` (the lock or socket it tells by)."""
    state = ctx.services.is_active(role)
    if state is not None:
        running = state == "active"
        how = f"systemd says {state}"
    elif running is None:
        detail = f"cannot tell whether {unit_name(role)} runs without root ({probe} is root's)"
        return needs_root("running", probe, detail)
    elif how:
        how = f"{how}? {'yes' if running else 'no'}"
    if running:
        return ok("running", f"{unit_name(role)} is running ({how})")
    fix = (
        (
            f"`systemctl start {unit_name(role)}`; if it stops again, "
            f"`journalctl -u {unit_name(role)} -n 50` says why"
        )
        if state is not None
        else (f"{ctx.services.why_not_live()}: start it by hand with `{foreground}`")
    )
    return fail("running", f"{unit_name(role)} is not running ({how})", fix)


def _collector(ctx: Context, m: manifest.Manifest, network: bool) -> list[Check]:
    layout, s = ctx.layout, m.settings
    env, checks = _common(ctx, m)
    data = layout.host(str(s["data"]))
    exe = layout.bin("collector", "safeguard-collector")
    serve = f"sudo -u {m.account} {exe} serve --data {s['data']} --listen {s['listen']}"
    serve += f" --web {s['web']}"
    checks.append(
        _running(
            ctx,
            "collector",
            answers(data / "admin.sock"),
            "does its admin socket answer",
            serve,
            data / "admin.sock",
        )
    )
    account = accounts.lookup(layout, m.account)
    checks.append(private("data folder", data, 0o700, account.uid if account else None))
    checks.append(private("secrets", data / "secrets", 0o700, None))
    if not network:
        return checks
    policy = run_tool(env, "safeguard-collector", "policy", "show", "--data", data)
    if policy.returncode == 0 and "current policy version" in policy.stdout:
        checks.append(ok("policy", policy.stdout.strip()))
    elif _permission_denied(policy.stderr) or denied(data / "collector.duckdb"):
        checks.append(needs_root("policy", data / "collector.duckdb"))
    else:
        checks.append(
            fail(
                "policy",
                "no signed policy is published",
                f"`safeguard-collector policy publish --data {s['data']}`",
            )
        )
    names = tuple(str(n) for n in s.get("names") or [])  # type: ignore[attr-defined]
    tls_name, _, port = agent_address(names, str(s["listen"])).rpartition(":")
    host = str(s["listen"]).rpartition(":")[0].strip("[]")
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 -- dialling
    ca = layout.host(layout.public_ca)  # the same CA, readable by anyone (the data's is not)
    if not ca.is_file() or denied(ca):
        ca = data / "ca.pem"
        if denied(ca):
            return [*checks, needs_root("TLS", ca)]
    checks.append(tls("TLS", host, int(port), ca, tls_name))
    probe, window = grpc_probe("gRPC", env / "bin" / "python", f"{host}:{port}", ca, tls_name)
    checks += [probe, clock(window, ctx.services.live)]
    return checks


def _agent(ctx: Context, m: manifest.Manifest, network: bool) -> list[Check]:
    layout, s = ctx.layout, m.settings
    env, checks = _common(ctx, m)
    state = layout.host(str(s["state"]))
    if not layout.host(AUTOSTART).exists():
        checks.append(
            fail(
                "keyboard helper",
                f"{AUTOSTART} is missing",
                "`safeguard-install upgrade agent` writes it again",
            )
        )
    else:
        checks.append(ok("keyboard helper", f"starts at every graphical login ({AUTOSTART})"))
    exe = layout.bin("agent", "safeguard-agent")
    checks.append(
        _running(
            ctx,
            "agent",
            lock_held(state / "run.lock"),
            "does it hold its run.lock",
            f"sudo {exe} run --state {s['state']}",
            state / "run.lock",
        )
    )
    checks += [
        private("state folder", state, 0o700, 0),
        private("private key", state / "agent.key", 0o600, 0),
        private("identity", state / "identity.json", 0o600, 0),
    ]
    if denied(state / "identity.json"):  # status, policy, TLS and gRPC all start from it
        checks.append(needs_root("enrolment", state / "identity.json"))
        return checks
    status = run_tool(env, "safeguard-agent", "status", "--state", state)
    fields = dict(line.split(":", 1) for line in status.stdout.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if status.returncode != 0 and _permission_denied(status.stderr):
        checks.append(needs_root("enrolment", state))
        return checks
    if status.returncode != 0:
        detail = (status.stderr.strip().splitlines() or ["no output"])[-1]
        checks.append(
            fail(
                "enrolment",
                detail,
                "`safeguard-install uninstall agent --purge`, then install again with a new token",
            )
        )
        return checks
    backlog = int(fields.get("pending", "0").split()[0]) + int(
        fields.get("unacked", "0").split()[0]
    )
    checks.append(
        Check(
            "enrolment",
            "ok" if backlog < 1000 else "warn",
            f"agent {fields.get('agent_id')}, {backlog} events waiting to ship",
            "many events waiting: the collector is unreachable or refusing them",
        )
    )
    if not network:
        return checks
    checks.append(_agent_policy(fields.get("policy_version")))
    identity = json.loads((state / "identity.json").read_text())
    host, port = split_address(str(identity["collector"]))
    checks.append(tls("TLS", host, port, state / "ca.pem", host))
    probe, window = grpc_probe(
        "gRPC", env / "bin" / "python", str(identity["collector"]), state / "ca.pem", ""
    )
    checks += [probe, clock(window, ctx.services.live)]
    return checks


def _permission_denied(stderr: str) -> bool:
    """A tool that failed because this user may not read its files (EACCES), not because
    anything is broken."""
    return "Permission denied" in stderr or "[Errno 13]" in stderr


def _agent_policy(policy: str | None) -> Check:
    """From `safeguard-agent status`: `N`, `none`, or `none (the saved bundle does not ...)`."""
    if policy is None:
        return Check("policy", "unknown", "this agent does not report its policy version")
    if policy.startswith("none"):
        why = policy.removeprefix("none").strip(" ()") or "no signed policy received yet"
        return fail(
            "policy",
            why,
            "it arrives at the next connection to the collector: see the "
            "gRPC check; a bundle that does not verify means re-enrol (uninstall --purge)",
        )
    return ok("policy", f"version {policy}, signed by the collector")
