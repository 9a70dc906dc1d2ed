"""A Spark driver started before its job run exists, then handed the run (local mode only).

    spark-submit [the run's launch options] duffbeer_local/spark_driver.py \
        --job NAME --run-file PATH --owner PID

In a fresh JVM the first seconds of any job go to starting the SparkSession and loading
Spark's planner, code generator, Parquet writer and catalogs (measured on the 2-core
machine: 6 s to the session, 7.5 s for a first 1,000-row aggregation that then takes 0.6 s,
3.3 s for a first Parquet write that then takes 0.5 s). The local Glue runner
(duffbeer_local.glue_runner) starts one such driver per job ahead of time, with the launch
options the job's next run will have; this script warms it up with a query of its own, then
waits for the run file to appear (JSON: the run's script, Python libraries, arguments and
folder; spark-submit's Python gets no stdin). It runs the script as spark-submit would
have (`__main__`, `sys.argv`, the libraries on the path), in this one process, which ends
with it: one process per run, as before, and its exit status is the run's. If the owner
process (the local stack) ends first, it exits without a run. `--job` names the job for
whoever lists processes.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
import time
from pathlib import Path
from typing import TypedDict

from pyspark.sql import SparkSession


def warm_up(spark: SparkSession) -> None:
    """Load what every job needs first: an aggregation with a shuffle, a Parquet round trip,
    and each configured catalog (Iceberg's GlueCatalog connects on first use)."""
    frame = spark.range(1000).selectExpr("id % 7 AS k", "id AS v")
    frame.groupBy("k").sum("v").collect()
    with tempfile.TemporaryDirectory(prefix="spark-driver-warm-up-") as folder:
        frame.write.parquet(f"{folder}/rows")
        spark.read.parquet(f"{folder}/rows").count()
    for key, value in spark.sparkContext.getConf().getAll():
        name = key.removeprefix("spark.sql.catalog.")
        if key.startswith("spark.sql.catalog.") and "." not in name and value:
            spark.sql(f"SHOW NAMESPACES IN {name}").collect()


class HandedRun(TypedDict):
    """What the runner writes in the run file."""

    script: str
    py_files: list[str]
    arguments: list[str]
    cwd: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_run(run_file: Path, owner: int, poll_s: float = 0.05) -> HandedRun | None:
    """The run handed over in `run_file` (written whole, then renamed into place), or None
    once the owner has gone."""
    while not run_file.exists():
        if not _alive(owner):
            return None
        time.sleep(poll_s)
    run: HandedRun = json.loads(run_file.read_text())
    run_file.unlink()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True)
    parser.add_argument("--run-file", type=Path, required=True)
    parser.add_argument("--owner", type=int, required=True)
    args = parser.parse_args(argv)
    spark = SparkSession.builder.getOrCreate()
    try:
        warm_up(spark)
    except Exception as e:  # a slower first query, never a failed run
        # One line that the runner's error_from_log never takes for the run's own error.
        sys.stdout.write(f"spark_driver: warm-up failed, the run starts cold ({e!r})\n")
    run = wait_for_run(args.run_file, args.owner)
    if run is None:
        return 0
    script, arguments = run["script"], run["arguments"]
    sys.stdout.write(f"spark_driver: running {script} {' '.join(arguments)}\n")
    sys.stdout.flush()
    for library in run["py_files"]:
        spark.sparkContext.addPyFile(library)
    os.chdir(run["cwd"])
    sys.argv = [script, *arguments]
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
