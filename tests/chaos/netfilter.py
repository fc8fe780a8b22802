"""A network partition with nftables: every packet to or from one TCP port is dropped.

Dropped, not refused: open connections hang and retransmit, new ones time out in SYN, as when
a switch between a classroom and the server room dies. Healing removes the table; TCP then
carries on with connections that have not given up. The rule lives in a table of its own,
named after this process and the port, and matches only that port on loopback, so nothing
else on the machine is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess


class Partition:
    def __init__(self, port: int) -> None:
        self.port = port
        self.table = f"chaos_{os.getpid()}_{port}"
        self.active = False

    @staticmethod
    def unavailable() -> str | None:
        """Why nftables cannot be used here, or None."""
        if shutil.which("nft") is None:
            return "nft is not installed (Debian package nftables; scripts/test installs it)"
        probe = f"chaos_probe_{os.getpid()}"
        made = subprocess.run(["nft", "add", "table", "inet", probe], capture_output=True,
                              text=True, check=False)  # fmt: skip
        if made.returncode != 0:
            return f"nft cannot add a table here: {made.stderr.strip()}"
        subprocess.run(["nft", "delete", "table", "inet", probe], capture_output=True, check=False)
        return None

    def cut(self) -> None:
        rules = (
            f"table inet {self.table} {{\n"
            "  chain input {\n"
            "    type filter hook input priority -10; policy accept;\n"
            f'    iifname "lo" tcp dport {self.port} drop\n'
            f'    iifname "lo" tcp sport {self.port} drop\n'
            "  }\n"
            "}\n"
        )
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True,
                       capture_output=True)  # fmt: skip
        self.active = True

    def heal(self) -> None:
        if self.active:
            subprocess.run(["nft", "delete", "table", "inet", self.table], check=False,
                           capture_output=True)  # fmt: skip
            self.active = False
