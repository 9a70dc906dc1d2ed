"""State maintenance benchmark: one batch merged into a large maintained state by the
maintain_state job under spark-submit; prints the whole process's wall time and the job's
phases. Figures are printed, never asserted.

    python -m bench.bench_state [--state-lines 10000000] [--batch-lines 100000] [--repeat 1]

The state (default 10M current lines: one batch written with pyarrow and merged once,
untimed) is kept under build/bench/ and reused. Each timed run publishes a new batch of
`--batch-lines` lines, half of them new versions of existing lines picked uniformly and
half new orders, merges it as its own spark-submit process, then puts the state back as it
was (pointer and batch pointer), so every run merges into the same state.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_glue_job import JAVA_OPTIONS
from bench.jvm_class_archive import archive_option, ensure_archive
from bench.state_history import History, current_manifest, plan_state, publish_state, run_merge
from duffbeer import naming, utc

ROOT = Path(__file__).resolve().parents[1]
READY = "bench-state-ready.json"
BUILD_SEED = 1


def build_state(root: Path, lines: int, driver_memory: str) -> dict[str, Any]:
    """The state of one batch of `lines` lines (reused when already built)."""
    ready = root / READY
    if ready.exists():
        return dict(json.loads(ready.read_text()))
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    batch = History(root, seed=BUILD_SEED).next_batch(lines, 0.0)
    written = time.monotonic() - started
    plan = plan_state(root, run_id="bench-state-build", token="00000001", now=utc.now())
    if plan is None:
        raise RuntimeError(f"nothing to merge under {root}")
    merged = run_merge(
        root, plan, driver_memory=driver_memory, log=root.parent / "bench-state-build.log"
    )
    publish_state(root, plan, utc.now())
    facts = {
        "lines": batch["lines"],
        "version": plan["version"],
        "write_seconds": round(written, 1),
        "merge_seconds": round(merged, 1),
    }
    ready.write_text(json.dumps(facts))
    return facts


def timed_merge(
    root: Path,
    batch_lines: int,
    update_share: float,
    attempt: int,
    driver_memory: str,
    java_options: str,
) -> dict[str, Any]:
    """Publish a new batch, merge it with spark-submit (timed), then restore the state."""
    pointer = root / naming.STATE_POINTER_KEY
    published = pointer.read_text()
    # The generator must know the state's keys to update them: draw the first batch's keys
    # again as build_state drew them, then this run's lines from a seed of its own.
    history = History(root, seed=BUILD_SEED)
    history.lines.add_orders(current_manifest(root)["counts"]["lines"], history.rng)
    history.rng = np.random.default_rng(100 + attempt)
    history.index = 1000 + attempt
    batch = history.next_batch(batch_lines, update_share)
    # A fresh version each run: the same id would find the version built and stop at once.
    token = secrets.token_hex(4)
    plan = plan_state(root, run_id=f"bench-{attempt}", token=token, now=utc.now())
    if plan is None:
        raise RuntimeError(f"nothing to merge under {root}")
    log = root.parent / f"bench-state-merge-{attempt}.log"
    try:
        cpu: list[float] = []
        seconds = run_merge(
            root, plan, driver_memory=driver_memory, java_options=java_options, log=log, cpu=cpu
        )
        built = json.loads((root / naming.state_manifest_key(plan["version"])).read_text())
    finally:
        pointer.write_text(published)
        (root / naming.manifest_key(batch["batch_id"])).unlink()
        shutil.rmtree(root / naming.state_version_prefix(plan["version"]), ignore_errors=True)
        shutil.rmtree(
            root / naming.run_prefix(batch["batch_id"], batch["run_id"]), ignore_errors=True
        )
    return {"seconds": seconds, "cpu": cpu[0], "batch": batch, "manifest": built}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-lines", type=int, default=10_000_000)
    parser.add_argument("--batch-lines", type=int, default=100_000)
    parser.add_argument("--update-share", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument(
        "--no-class-archive",
        action="store_true",
        help="run the job's JVM without the class-data archive (bench/jvm_class_archive.py)",
    )
    ns = parser.parse_args(argv)
    root = ns.work_dir / f"state-{ns.state_lines}"
    state = build_state(root, ns.state_lines, ns.driver_memory)
    print(
        f"state: {state['lines']:,} current lines, version {state['version']} "
        f"(batch written in {state['write_seconds']} s, first merge {state['merge_seconds']} s; "
        "not timed below)",
        flush=True,
    )
    java_options = ""
    if not ns.no_class_archive:
        # The transform bench's JVM class-data archive (bench/jvm_class_archive.py): most of
        # the classes a merge loads are Spark's, which the transform loads too.
        archive, spent = ensure_archive(
            Path(sys.executable).parent / "spark-submit",
            " ".join(JAVA_OPTIONS),
            ROOT / "build" / "jvm",
        )
        origin = f"made in {spent:.1f} s, not timed" if spent else "reused"
        print(f"JVM class-data archive: {archive} ({origin})")
        java_options = archive_option(archive)
    runs = []
    for attempt in range(1, ns.repeat + 1):
        result = timed_merge(
            root, ns.batch_lines, ns.update_share, attempt, ns.driver_memory, java_options
        )
        runs.append(result["seconds"])
        merge = result["manifest"]["merge"]
        phases = ", ".join(f"{k} {v:.1f}" for k, v in merge["timings"].items())
        print(
            f"  run {attempt}/{ns.repeat}: {result['batch']['lines']:,} lines "
            f"({result['batch']['updates']:,} updates) into {state['lines']:,}: "
            f"{result['seconds']:.1f} s whole spark-submit process ({result['cpu']:.0f} CPU s), "
            f"load average {os.getloadavg()[0]:.1f}; touched {merge['touched_orders']:,} orders, "
            f"{merge['touched_partitions']} partitions; phases (s): {phases}",
            flush=True,
        )
    print(
        f"\n{os.cpu_count()} CPUs: maintenance of a {ns.batch_lines:,}-line batch over "
        f"{state['lines']:,} current lines: median {statistics.median(runs):.1f} s "
        f"(runs: {', '.join(f'{r:.1f}' for r in runs)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
