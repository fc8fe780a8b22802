"""`safeguard-install upgrade`: new code, same identity, outbox, chain and database.

For each installed role: build a new venv beside the running one and check it; make sure the new
code reads the existing state (`safeguard-agent status`, `safeguard-collector policy show`);
swap `current` in one rename; rewrite the unit (templates change between versions); restart. A
failure at any step puts the old link and unit back and restarts the old code. Data and state
folders are only read, never rewritten, by the installer.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from installer import command, manifest, pyenv, units
from installer.context import Context, run_ok
from installer.layout import AUTOSTART, COMMAND_LINK, ROLES, unit_name
from installer.transaction import InstallError, Transaction

log = logging.getLogger(__name__)


def upgrade(ctx: Context, roles: list[str]) -> int:
    layout = ctx.layout
    found = [m for r in (roles or ROLES) if (m := manifest.load(layout, r)) is not None]
    if not found:
        raise InstallError(
            f"no {' or '.join(roles or ROLES)} is installed here; nothing to upgrade",
            fix="install it first with `safeguard-install ROLE ...`",
        )
    ctx.require_root()
    source = None if ctx.python_env else pyenv.find_source(ctx.source)
    for m in found:
        try:
            _upgrade_one(ctx, m, source or Path())
        except BaseException:
            if not ctx.no_start and ctx.services.live:  # the rollback stopped it: old code back
                ctx.services.start(Transaction(), m.role)
            raise
    for m in found:
        pyenv.prune(layout, m.role)
    return 0


def _upgrade_one(ctx: Context, m: manifest.Manifest, source: Path) -> None:
    layout, role = ctx.layout, m.role
    folder = layout.host(str(m.settings["state" if role == "agent" else "data"]))
    with Transaction() as tx:
        version = pyenv.switch(layout, tx, role, source, ctx.python_env)
        env = layout.host(layout.current(role))
        # an install made before the installer put itself on root's PATH gets the link now
        linked = command.ensure(layout, tx, role)
        if role == "agent":  # the new code must read the identity and outbox the old one wrote
            run_ok(env, "safeguard-agent", "status", "--state", folder)
            exe = layout.bin("agent", "safeguard-agent")
            text = units.agent_unit(exe, layout.target(folder))
            tx.write(
                layout.host(AUTOSTART),
                units.helper_desktop(exe, layout.target(folder)).encode(),
                0o644,
            )
        else:
            run_ok(env, "safeguard-collector", "policy", "show", "--data", folder)
            s = m.settings
            text = units.collector_unit(
                layout.bin("collector", "safeguard-collector"),
                layout.target(folder),
                str(s["listen"]),
                str(s["web"]),
                m.account,
            )
        tx.write(layout.host(layout.unit(role)), text.encode(), 0o644)
        external = str(ctx.python_env.absolute()) if ctx.python_env else ""
        manifest.save(
            layout,
            tx,
            dataclasses.replace(
                m,
                version=version,
                external_env=external,
                command_link=str(COMMAND_LINK) if linked else "",
            ),
            keep_dirs=True,
        )
        started = not ctx.no_start and ctx.services.start(tx, role)
    log.info("upgrade.done role=%s from=%s to=%s", role, m.version, version)
    how = (
        "restarted"
        if started
        else "not restarted ("
        + ("--no-start" if ctx.no_start else ctx.services.why_not_live())
        + ")"
    )
    print(
        f"upgraded the {role} from {m.version} to {version}; {unit_name(role)} {how}; "
        f"{layout.target(folder)} kept as it was"
    )
