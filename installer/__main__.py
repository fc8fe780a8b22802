"""`python3 -m installer`: the same as `safeguard-install`, before anything is installed."""

from __future__ import annotations

import sys

from installer.cli import main

sys.exit(main())
