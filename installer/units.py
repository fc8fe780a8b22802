"""The systemd units and the autostart entry, rendered from the install settings.

Pure text in, text out: tests check them with `systemd-analyze verify`. Every path named here is
a target path (as the installed system sees it), never one under --root.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

# The per-login keyboard helper (agent/cli.py, issue 5). One constant, so a rename is one edit.
HELPER_COMMAND = "keyboard-helper"

# Shared hardening: what neither service needs. Each line is documented in docs/installer.md.
_HARDENING = """\
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectKernelModules=yes
ProtectControlGroups=yes
ProtectHostname=yes
ProtectClock=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
UMask=0077
"""


_PLAIN = re.compile(r"^[A-Za-z0-9_./:@+,=\[\]-]+$")


def _exec(argv: list[str]) -> str:
    """A command line that systemd's ExecStart= and a .desktop Exec= read the same way: only
    plain words (paths with spaces or quotes are refused when the options are read)."""
    for arg in argv:
        if not _PLAIN.match(arg):
            raise ValueError(f"{arg!r} has characters a unit's command line cannot hold plainly")
    return " ".join(argv)


def collector_unit(
    exe: PurePosixPath, data: PurePosixPath, listen: str, web: str, user: str
) -> str:
    argv = [str(exe), "serve", "--data", str(data), "--listen", listen, "--web", web]
    ports = [int(a.rsplit(":", 1)[1]) for a in (listen, web)]
    caps = "CAP_NET_BIND_SERVICE" if min(ports) < 1024 else ""
    return f"""\
# Written by safeguard-install; `safeguard-install upgrade` rewrites it. Local changes belong in
# `systemctl edit safeguard-collector` (a drop-in), not here.
[Unit]
Description=Safeguard monitor collector (agents' gRPC/TLS, DSL console)
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=10

[Service]
Type=simple
User={user}
Group={user}
ExecStart={_exec(argv)}
Restart=on-failure
RestartSec=5
TimeoutStopSec=60
KillSignal=SIGTERM
Environment=PYTHONUNBUFFERED=1
ReadWritePaths={data}
ProtectHome=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelLogs=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
CapabilityBoundingSet={caps}
AmbientCapabilities={caps}
{_HARDENING}
[Install]
WantedBy=multi-user.target
"""


def agent_unit(exe: PurePosixPath, state: PurePosixPath) -> str:
    argv = [str(exe), "run", "--state", str(state)]
    return f"""\
# Written by safeguard-install; `safeguard-install upgrade` rewrites it. Local changes belong in
# `systemctl edit safeguard-agent` (a drop-in), not here.
[Unit]
Description=Safeguard monitor agent (USB control, event shipping, policy)
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=10

[Service]
Type=simple
# root: it writes sysfs `authorized` to block USB storage and reads every user's browser
# history. Its state folder is 0700 root, so no pupil can read the key or switch it off.
User=root
ExecStart={_exec(argv)}
Restart=always
RestartSec=5
TimeoutStopSec=30
KillSignal=SIGTERM
Environment=PYTHONUNBUFFERED=1
ReadWritePaths={state}
ProtectHome=read-only
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# The per-login keyboard helpers reach the service through a socket here.
RuntimeDirectory=safeguard-agent
RuntimeDirectoryMode=0755
# A footprint cap on top of the agent's own watchdog: a runaway agent is restarted, not felt.
MemoryMax=512M
CPUQuota=50%
{_HARDENING}
[Install]
WantedBy=multi-user.target
"""


def helper_desktop(exe: PurePosixPath, state: PurePosixPath) -> str:
    command = _exec([str(exe), HELPER_COMMAND, "--state", str(state)])
    return f"""\
[Desktop Entry]
Type=Application
Name=Safeguard keyboard helper
Comment=Safeguarding monitor: checks typed words against the school's policy
Exec={command}
Terminal=false
NoDisplay=true
X-GNOME-Autostart-enabled=true
X-GNOME-AutoRestart=true
X-KDE-autostart-after=panel
"""
