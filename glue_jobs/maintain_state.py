"""AWS Glue 5.0 job (and spark-submit script): merge published batches into a new state version.

    spark-submit glue_jobs/maintain_state.py --JOB_NAME maintain_state \
        --processed_path <s3://bucket or a local directory> --plan_key state/plans/<version>.json
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyspark.sql import SparkSession

from duffbeer.state import StateManifest
from glue_jobs.orders.logs import job_logger
from glue_jobs.orders.session import open_runtime
from glue_jobs.state.args import StateJobArgs
from glue_jobs.state.job import StateMerge


def main(
    argv: Sequence[str] | None = None, spark: SparkSession | None = None
) -> StateManifest | None:
    """Parse the arguments, open the runtime, carry out the plan, commit the Glue job.
    Returns the version manifest, or None when the plan was stale (nothing written)."""
    args = StateJobArgs.from_args(list(sys.argv if argv is None else argv))
    log = job_logger({"plan_key": args.plan_key, "job": args.job_name})
    runtime = open_runtime(args.job_name, spark)
    log.info(
        "job started", fields={"on_glue": runtime.on_glue, "processed_path": args.processed_path}
    )
    manifest = StateMerge(args, runtime.spark, log).run()
    runtime.commit()
    return manifest


if __name__ == "__main__":
    main()
