"""safeguard-install: deploy the collector and the agents as services, upgrade, uninstall, doctor.

The installer itself uses the standard library only, so a technician can run it from an unpacked
source tree with the system Python (`sudo python3 -m installer ...`) before anything is
installed. The code it deploys goes into its own virtual environments under /opt/safeguard.
"""

from __future__ import annotations

__all__ = ["PROG"]

PROG = "safeguard-install"
