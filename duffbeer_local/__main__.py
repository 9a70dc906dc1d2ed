"""Entry point: `python -m duffbeer_local demo | serve | runs | loadtest` (see cli.py)."""

from __future__ import annotations

import sys

from duffbeer_local.cli import main

if __name__ == "__main__":
    sys.exit(main())
