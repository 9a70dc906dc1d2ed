"""Run every benchmark: each bench/bench_*.py module's main(), in name order."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main() -> int:
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    failures = 0
    for name in modules:
        print(f"== bench.{name} ==", flush=True)
        module = importlib.import_module(f"bench.{name}")
        failures += 1 if module.main([]) else 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
