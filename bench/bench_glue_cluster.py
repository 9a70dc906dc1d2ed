"""The Glue job on a Spark standalone cluster: time, and recovery from a lost executor.

    python -m bench.bench_glue_cluster [--rows 1000000] [--kills parse_validate,rejects,order_lines]

Starts a master and two one-core workers on 127.0.0.1 (bench/spark_cluster.py), then runs
the job with spark-submit: once in local[2] mode (the reference), once on the cluster, and
once on the cluster per kill point, an executor killed (SIGKILL) while a task of that phase
runs. Each cluster run's outputs are compared with the reference's table by table. Prints
wall times and whether the outputs are identical; never asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.generate_orders import generate_orders
from bench.spark_cluster import (
    ROWS_KEPT,
    ExecutorKiller,
    RunResult,
    StandaloneCluster,
    compare_outputs,
    free_port,
    job_command,
    run_job,
)

ROOT = Path(__file__).resolve().parents[1]
# Seconds a task of the phase has run when its executor is killed (ROWS_KEPT: the moment
# the job has logged the kept rows' figures).
KILL_AFTER = {"parse_validate": 2.0, ROWS_KEPT: 0.0, "order_lines": 0.5}


def _report(name: str, result: RunResult, reference: Path, out: Path) -> None:
    same = (
        "identical"
        if result.returncode == 0 and not compare_outputs(reference, out)
        else "DIFFERENT"
    )
    kills = ", ".join(
        f"executor {k.executor} killed at {k.phase}"
        + (f" (stage {k.stage})" if k.stage >= 0 else "")
        + f", {k.seconds_into_run:.1f} s into the run"
        for k in result.kills
    )
    status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode}, {result.log})"
    print(
        f"  {name:<36} {result.seconds:7.1f} s  {status:<4} outputs {same}"
        + (f"; {kills}" if kills else ""),
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dirty-fraction", type=float, default=0.02)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--kills", default=",".join(KILL_AFTER))
    parser.add_argument("--executor-memory", default="3g")
    ns = parser.parse_args(argv)
    work = ns.work_dir / "cluster"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = ns.work_dir / f"orders-{ns.rows}-dirty{ns.dirty_fraction}-seed1.csv"
    if not source.exists():
        generate_orders(source, ns.rows, dirty_fraction=ns.dirty_fraction, seed=1)
    memory = {"spark.executor.memory": ns.executor_memory}
    print(f"{ns.rows} rows, {source.stat().st_size / 1e6:.0f} MB; {os.cpu_count()} CPUs")
    reference = work / "out-local"
    local = run_job(
        job_command("local[2]", source, reference, submit_options=("--driver-memory", "6g")),
        work / "local.log",
    )
    print(f"  {'local[2] (reference)':<36} {local.seconds:7.1f} s", flush=True)
    if local.returncode != 0:
        print(f"  the reference run failed: {local.log}")
        return 1
    worker_memory = f"{int(ns.executor_memory.rstrip('g')) + 1}g"
    with StandaloneCluster(work / "cluster", worker_memory=worker_memory) as cluster:
        out = work / "out-cluster"
        result = run_job(job_command(cluster.url, source, out, conf=memory), work / "cluster.log")
        _report("cluster, no loss", result, reference, out)
        for phase in (p for p in ns.kills.split(",") if p):
            out = work / f"out-kill-{phase}"
            ui_port = free_port()
            killer = ExecutorKiller(cluster, ui_port, {phase: KILL_AFTER.get(phase, 0.0)})
            result = run_job(
                job_command(cluster.url, source, out, ui_port=ui_port, conf=memory),
                work / f"kill-{phase}.log",
                killer=killer,
            )
            _report(f"cluster, executor lost in {phase}", result, reference, out)
    print(f"  load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
