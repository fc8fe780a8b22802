"""The classroom-PC agent: sensors, outbox, shipper, identity, service loop and CLI.

It imports nothing from `collector` and never needs DuckDB or the web stack.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("safeguard-monitor")
except metadata.PackageNotFoundError:  # running from a source checkout, not installed
    __version__ = "0.1.0+src"
