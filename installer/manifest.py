"""What an install made, kept in /etc/safeguard/ROLE.json for upgrade, uninstall and doctor.

The settings part is compared on a second install: the same settings mean "nothing to do"; other
settings are refused (upgrade or uninstall first), so an install never half-overwrites another.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from installer.layout import Layout
from installer.transaction import InstallError, Transaction

FORMAT = 1


@dataclass(frozen=True)
class Manifest:
    role: str
    version: str  # of the code installed
    settings: dict[str, object]  # the options that shape the install (no secrets)
    account: str  # the service account ("root" for the agent)
    account_created: bool  # made by us: uninstall takes it back
    data_created: bool  # the data/state folder was made by us (rather than found)
    external_env: str = ""  # --python-env: not ours to delete
    admin: str = ""  # the first DSL account (collector)
    format: int = FORMAT
    created_dirs: list[str] = field(default_factory=list)  # folders the install made
    command_link: str = ""  # /usr/local/sbin/safeguard-install, when ours (made or shared)


def load(layout: Layout, role: str) -> Manifest | None:
    path = layout.host(layout.manifest(role))
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        manifest = Manifest(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise InstallError(
            f"{path} is damaged ({exc})",
            fix=f"move it away and run `safeguard-install uninstall {role}` or install again",
        ) from None
    if manifest.format != FORMAT:
        raise InstallError(f"{path} has format {manifest.format}; this installer reads {FORMAT}")
    return manifest


def save(layout: Layout, tx: Transaction, manifest: Manifest, keep_dirs: bool = False) -> None:
    """Write the manifest, recording the folders this transaction made (on an upgrade, as well
    as the ones the install recorded)."""
    path = layout.host(layout.manifest(manifest.role))
    tx.mkdir(path.parent, 0o755)
    made = {str(layout.target(p)) for p in tx.created_dirs}
    if keep_dirs:
        made |= set(manifest.created_dirs)
    manifest = replace(manifest, created_dirs=sorted(made))
    text = json.dumps(asdict(manifest), indent=1, sort_keys=True) + "\n"
    tx.write(path, text.encode(), 0o644)


def require(layout: Layout, role: str) -> Manifest:
    manifest = load(layout, role)
    if manifest is None:
        raise InstallError(
            f"no {role} is installed here ({layout.host(layout.manifest(role))} is missing)",
            fix=f"install it with `safeguard-install {role} ...`",
        )
    return manifest


def refuse_other_settings(existing: Manifest, settings: dict[str, object]) -> None:
    if existing.settings == settings:
        return
    diffs = ", ".join(
        f"{k}: {existing.settings.get(k)!r} installed, {settings.get(k)!r} asked"
        for k in sorted(set(existing.settings) | set(settings))
        if existing.settings.get(k) != settings.get(k)
    )
    raise InstallError(
        f"a {existing.role} is already installed here with other settings ({diffs}); "
        "nothing changed",
        fix=f"`safeguard-install uninstall {existing.role}` first (add --keep-data to keep "
        "its data), then install again",
    )
