"""The Glue job on a Spark standalone cluster: a master and two one-core workers on
127.0.0.1, started from the pinned pyspark. Executors are lost mid-run, as Glue workers
can be, and the run still publishes what a local[2] run publishes, table by table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from bench.generate_orders import generate_orders
from bench.spark_cluster import (
    ROWS_KEPT,
    ExecutorKiller,
    StandaloneCluster,
    compare_outputs,
    free_port,
    job_command,
    run_job,
)
from glue_jobs.transform_orders import main

pytestmark = [pytest.mark.spark, pytest.mark.cluster]

# Where an executor is killed: during the parse (a parse task has run for half a second),
# once the parsed rows are kept (the job has logged their figures; every later phase reads
# them back), and during the curated write (a task of it is running).
KILLS = {"parse_validate": 0.5, ROWS_KEPT: 0.0, "order_lines": 0.0}
# A short run on little data: the JIT compiles with C1 only, in the driver and executors.
QUICK_JIT = "-XX:TieredStopAtLevel=1"


def test_a_cluster_run_that_loses_executors_publishes_what_local_publishes(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Given an order file with dirty rows of every kind, and the outputs
    # of the job on it in local[2] mode (the test session)
    source = tmp_path / "orders.csv"
    generate_orders(source, 40_000, dirty_fraction=0.02, seed=11, crlf=True)
    assert spark.sparkContext.master == "local[2]"
    local = tmp_path / "local"
    argv = [
        *("transform_orders.py", "--JOB_NAME", "transform_orders"),
        *("--input_path", str(source), "--output_path", str(local)),
        *("--batch_id", "bench", "--run_id", "bench-run", "--ingest_date", "2026-11-28"),
    ]
    main(argv, spark)
    # When the job runs on a standalone cluster and an executor is killed during the parse,
    # after the parsed rows are kept, and during the writes
    out = tmp_path / "cluster-out"
    with StandaloneCluster(tmp_path / "cluster") as cluster:
        ui_port = free_port()
        result = run_job(
            job_command(
                cluster.url,
                source,
                out,
                ui_port=ui_port,
                conf={"spark.executor.extraJavaOptions": QUICK_JIT},
                submit_options=("--driver-java-options", QUICK_JIT),
            ),
            tmp_path / "cluster-run.log",
            killer=ExecutorKiller(cluster, ui_port, KILLS),
            timeout=300,
        )
    log = result.log.read_text(errors="replace")
    # Then each kill hit its phase and Spark saw the executor go
    assert [kill.phase for kill in result.kills] == list(KILLS), log[-3000:]
    for kill in result.kills:
        assert f"Lost executor {kill.executor} on 127.0.0.1" in log
    # ... the run succeeded, and its outputs are identical to the local run's
    assert result.returncode == 0, log[-3000:]
    assert compare_outputs(local, out) == []
