"""The classroom-PC agent: sensors, outbox, shipper, identity, service loop and CLI.

It imports nothing from `collector` and never needs DuckDB or the web stack.
"""

from __future__ import annotations

import sys
from pathlib import Path

_DIST = "safeguard_monitor"  # the distribution's name as its metadata folder spells it


def _version() -> str:
    """The installed distribution's version, read from its metadata file.

    `importlib.metadata.version()` gives the same answer but imports `email`, `zipfile`, `csv`
    and more: about 4.5 MB in every agent process, the per-login keyboard helper included.
    This looks in the same places, in the same order (each `sys.path` folder, the dist-info
    or egg-info named after the distribution), and reads the one `Version:` header; only if
    it finds none does it ask importlib.metadata.
    """
    for folder in sys.path:
        try:
            names = sorted(entry.name for entry in Path(folder or ".").iterdir())
        except OSError:
            continue
        for name in names:
            stem, dot, kind = name.rpartition(".")
            if not dot or kind not in ("dist-info", "egg-info"):
                continue
            if stem.partition("-")[0].replace(".", "_").lower() != _DIST:
                continue
            meta = Path(folder or ".", name, "METADATA" if kind == "dist-info" else "PKG-INFO")
            try:
                with meta.open(encoding="utf-8") as fh:
                    for line in fh:
                        if line.startswith("Version:"):
                            return line.partition(":")[2].strip()
                        if not line.strip():
                            break  # end of the headers
            except OSError:
                continue
    from importlib import metadata

    try:
        return metadata.version("safeguard-monitor")
    except metadata.PackageNotFoundError:  # running from a source checkout, not installed
        return "0.1.0+src"


__version__ = _version()
