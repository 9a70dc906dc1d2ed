"""Where the job gets its Spark: GlueContext/Job on AWS Glue, a plain SparkSession elsewhere.

The choice is made once, here, by trying to build a GlueContext: it needs Glue's JARs, which
only exist in the Glue runtime (and Glue's Docker image). Everything else in the job takes
the resulting SparkSession and never asks where it runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from awsglue.context import GlueContext
from awsglue.job import Job
from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

# Target bytes of CSV per shuffle partition: large enough that a small file does not pay
# for 200 tiny tasks, small enough that a big one still spreads over every core.
BYTES_PER_SHUFFLE_PARTITION = 64 * 1024**2
# Bounds of a read split: Spark's own default at the top; at the bottom, below the cost
# Spark charges for opening a file (spark.sql.files.openCostInBytes) splitting only adds tasks.
MAX_SPLIT_BYTES = 128 * 1024**2
MIN_SPLIT_BYTES = 4 * 1024**2


def spark_settings() -> dict[str, str]:
    """Session settings the job relies on; the test fixture builds its session with these."""
    return {
        # Strict dates: a malformed date is a null (a reject), never an exception.
        "spark.sql.legacy.timeParserPolicy": "CORRECTED",
        "spark.sql.ansi.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        # The job sizes its shuffles itself (shuffle_partitions, a multiple of the cores).
        # AQE's coalescing would merge them into an odd number of unequal tasks (8 into
        # 3, 7 on 2 cores: the last round leaves a core idle).
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.sources.partitionOverwriteMode": "static",
        # Local paths: no Hadoop .crc side files (about a sixth of the write time, and
        # clutter next to the Parquet); S3 paths are unaffected.
        "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
    }


def shuffle_partitions(input_bytes: int, cores: int) -> int:
    """Shuffle partitions sized from the input: about 64 MiB of CSV each, as a multiple of
    the cores so that every core runs the same number of tasks."""
    per_core = math.ceil(input_bytes / (BYTES_PER_SHUFFLE_PARTITION * cores))
    return cores * max(1, per_core)


def split_bytes(input_bytes: int, cores: int) -> int:
    """Read-split size giving every core the same number of equal splits of at most
    128 MiB (Spark's default size). With the default, 450 MB on 2 cores is read as
    128+128+128+66 MB: one core parses twice the other's share at the end, and every
    later pass over the kept rows inherits the same imbalance."""
    rounds = max(1, math.ceil(input_bytes / (cores * MAX_SPLIT_BYTES)))
    return max(MIN_SPLIT_BYTES, math.ceil(input_bytes / (cores * rounds)))


def build_spark(app_name: str, extra: Mapping[str, str] | None = None) -> SparkSession:
    """A SparkSession with the job's settings (master and memory come from spark-submit)."""
    builder = SparkSession.builder.appName(app_name)
    for key, value in {**spark_settings(), **(extra or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


@dataclass
class JobRuntime:
    """The session plus, on AWS Glue, the Glue Job whose commit ends the run."""

    spark: SparkSession
    glue_job: Any | None = None

    @property
    def on_glue(self) -> bool:
        return self.glue_job is not None

    def commit(self) -> None:
        if self.glue_job is not None:
            self.glue_job.commit()


def open_runtime(job_name: str, spark: SparkSession | None = None) -> JobRuntime:
    """Build (or reuse) the session and start a Glue Job when the Glue runtime is present."""
    session = spark or build_spark(job_name)
    try:
        glue_context = GlueContext(session.sparkContext)
    except (TypeError, Py4JError):
        # Off Glue the awsglue Python interfaces import, but GlueContext's JVM classes are
        # missing (py4j then hands back a non-callable JavaPackage): plain Spark it is.
        return JobRuntime(spark=session)
    job = Job(glue_context)
    job.init(job_name, {"JOB_NAME": job_name})
    return JobRuntime(spark=glue_context.spark_session, glue_job=job)
