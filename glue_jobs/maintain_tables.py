"""AWS Glue 5.0 job (and spark-submit script): the state's Iceberg tables' upkeep.

    spark-submit --jars <iceberg jars> --conf <duffbeer.iceberg.spark_conf> \
        glue_jobs/maintain_tables.py --JOB_NAME maintain_tables --database duffbeer_reports \
        [--snapshot_retention_hours 168] [--orphan_retention_hours 72] [--stale_branch_hours 24]

Run daily by a Glue scheduled trigger (deploy); see glue_jobs/state/maintenance.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from duffbeer import utc
from glue_jobs.orders.logs import job_logger
from glue_jobs.orders.session import open_runtime
from glue_jobs.state.args import MaintenanceArgs
from glue_jobs.state.maintenance import Clock, MaintenanceFacts, TableMaintenance


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    s3: Any | None = None,
    clock: Clock = utc.now,
) -> MaintenanceFacts:
    """Parse the arguments, open the runtime, maintain every table, commit the Glue job."""
    args = MaintenanceArgs.from_args(list(sys.argv if argv is None else argv))
    log = job_logger({"job": args.job_name, "database": args.database})
    runtime = open_runtime(args.job_name, spark)
    facts = TableMaintenance(args, runtime.spark, log, clock=clock, s3=s3).run()
    runtime.commit()
    return facts


if __name__ == "__main__":
    main()
