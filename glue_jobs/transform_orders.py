"""AWS Glue 5.0 job (and spark-submit script): transform one orders CSV into a published batch.

    spark-submit glue_jobs/transform_orders.py --JOB_NAME transform_orders \
        --input_path <csv file or prefix> --output_path <dir or s3 prefix> --batch_id <id> \
        [--ingest_date YYYY-MM-DD] [--run_id <id>] [--source_event_time <ISO-8601>] \
        [--source_etag <etag>] [--source_version_id <id>] [--source_sequencer <hex>] \
        [--rerun_at <ISO-8601>] [--max_reject_ratio 0.05] [--max_file_bytes <n>]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyspark.sql import SparkSession

from duffbeer.manifest import Manifest
from glue_jobs.orders.args import JobArgs
from glue_jobs.orders.job import run_batch
from glue_jobs.orders.logs import job_logger
from glue_jobs.orders.session import open_runtime


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> Manifest:
    """Parse the arguments, open the runtime, run the batch, commit the Glue job."""
    args = JobArgs.from_args(list(sys.argv if argv is None else argv))
    log = job_logger({"batch_id": args.batch_id, "run_id": args.run_id, "job": args.job_name})
    runtime = open_runtime(args.job_name, spark)
    log.info("job started", fields={"on_glue": runtime.on_glue, "input_path": args.input_path})
    manifest = run_batch(args, runtime.spark, log)
    runtime.commit()
    return manifest


if __name__ == "__main__":
    main()
