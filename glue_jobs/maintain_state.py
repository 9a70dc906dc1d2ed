"""AWS Glue 5.0 job (and spark-submit script): merge a published batch into the Iceberg state.

    spark-submit --jars <iceberg jars> --conf <duffbeer.iceberg.spark_conf> \
        glue_jobs/maintain_state.py --JOB_NAME maintain_state \
        --processed_path <s3://bucket or a local directory> --database duffbeer_reports \
        --batch_id <batch> --run_id <execution name> [--processed_uri <s3 root it stands for>]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from glue_jobs.orders.logs import job_logger
from glue_jobs.orders.session import open_runtime
from glue_jobs.state.args import StateJobArgs
from glue_jobs.state.job import MergeOutcome, StateMerge


def main(
    argv: Sequence[str] | None = None, spark: SparkSession | None = None, s3: Any | None = None
) -> MergeOutcome:
    """Parse the arguments, open the runtime, merge and publish, commit the Glue job."""
    args = StateJobArgs.from_args(list(sys.argv if argv is None else argv))
    log = job_logger({"batch_id": args.batch_id, "run_id": args.run_id, "job": args.job_name})
    runtime = open_runtime(args.job_name, spark)
    log.info("job started", fields={"on_glue": runtime.on_glue, "database": args.database})
    outcome = StateMerge(args, runtime.spark, log, s3=s3).run()
    runtime.commit()
    return outcome


if __name__ == "__main__":
    main()
