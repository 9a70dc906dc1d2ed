"""Run every benchmark: each bench/bench_*.py module's main(), in name order.

What each one prints goes to the console and to docs/benchmarks.md, with the date, the
machine and the command that prints it again.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import io
import os
import platform
import sys
from pathlib import Path
from typing import TextIO

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


class Tee(io.TextIOBase):
    """A stdout that writes to the console and keeps a copy."""

    def __init__(self, console: TextIO) -> None:
        self.console = console
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.console.write(text)
        return self.copy.write(text)

    def flush(self) -> None:
        self.console.flush()


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> str:
    memory = "memory unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
        memory = f"{kib / 1024**2:.1f} GiB memory"
    return (
        f"{os.cpu_count()} cores, {memory}, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    started = utc_now()
    sections = []
    failures = 0
    for name in modules:
        print(f"== bench.{name} ==", flush=True)
        module = importlib.import_module(f"bench.{name}")
        began = utc_now()
        tee = Tee(sys.stdout)
        with contextlib.redirect_stdout(tee):
            failed = bool(module.main([]))
        failures += failed
        summary = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
        sections.append(
            f"## bench.{name}{' (failed)' if failed else ''}\n\n{summary}\n\n"
            f"Started {began}; command: `.venv/bin/python -m bench.{name}` (its defaults; "
            f"`-h` lists its options).\n\n```text\n{tee.copy.getvalue().rstrip()}\n```\n"
        )
    REPORT.write_text(
        "# Benchmarks\n\n"
        f"Written by `make bench` (`python -m bench`) from {started} to {utc_now()}.\n\n"
        f"Machine: {machine()}.\n\n"
        "Each benchmark prints its figures and never asserts; its method is in its module's "
        "docstring and in [ADR 0007](adr/0007-benchmark-method.md). To refresh this page, "
        "run `make bench` again on a quiet machine.\n\n" + "\n".join(sections)
    )
    print(f"figures written to {REPORT}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
