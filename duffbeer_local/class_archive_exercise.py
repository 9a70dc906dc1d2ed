"""What the local Spark drivers' class archive is recorded from: the Glue jobs' kinds of work
on a few rows (run by duffbeer_local.class_archive under spark-submit, local mode only).

    spark-submit [Iceberg jars and catalog settings] class_archive_exercise.py FOLDER DATABASE

The transform job's: a CSV read with a schema, an aggregation with a shuffle, a partitioned
Parquet write and read. The state job's, on an Iceberg table in the configured
`glue_catalog`: create (format v2, merge-on-read, partition transforms), insert, a branch, a
MERGE with delete, update and insert clauses, an overwrite, a snapshot read and snapshot
expiry. Only pyspark is imported: spark-submit runs this file on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

CATALOG = "glue_catalog"


def exercise(spark: SparkSession, folder: Path, database: str) -> None:
    rows = [f"{n},v{n % 3},2025-01-{n % 28 + 1:02d}" for n in range(200)]
    (folder / "in.csv").write_text("\n".join(["k,v,d", *rows]) + "\n")
    frame = (
        spark.read.option("header", "true")
        .schema("k INT, v STRING, d DATE")
        .csv(str(folder / "in.csv"))
    )
    frame.groupBy("v").agg(F.count("*"), F.sum("k")).collect()
    frame.write.partitionBy("d").parquet(str(folder / "out"))
    spark.read.parquet(str(folder / "out")).where(F.col("k") > 10).count()

    table = f"{CATALOG}.{database}.lines"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{database}")
    spark.sql(
        f"CREATE TABLE {table} (k INT, v STRING, d DATE) USING iceberg "
        "PARTITIONED BY (days(d), bucket(4, k)) TBLPROPERTIES ('format-version'='2', "
        "'write.merge.mode'='merge-on-read', 'write.update.mode'='merge-on-read', "
        "'write.delete.mode'='merge-on-read')"
    )
    frame.writeTo(table).append()
    spark.sql(f"ALTER TABLE {table} CREATE OR REPLACE BRANCH exercise")
    frame.withColumn("v", F.concat("v", F.lit("!"))).createOrReplaceTempView("changes")
    spark.sql(
        f"MERGE INTO {table}.branch_exercise t USING changes s ON t.k = s.k\n"
        "WHEN MATCHED AND s.k % 5 = 0 THEN DELETE\n"
        "WHEN MATCHED THEN UPDATE SET t.v = s.v\n"
        "WHEN NOT MATCHED THEN INSERT (k, v, d) VALUES (s.k, s.v, s.d)"
    )
    spark.table(f"{table}.branch_exercise").groupBy("d").count().collect()
    early = F.col("d") < F.lit("2025-01-10").cast("date")  # whole days: whole files
    frame.where(early).writeTo(table).overwrite(early)
    first = spark.sql(f"SELECT snapshot_id FROM {table}.snapshots ORDER BY committed_at").first()
    assert first is not None
    spark.read.option("snapshot-id", first[0]).table(table).count()
    spark.sql(f"ALTER TABLE {table} DROP BRANCH exercise")
    spark.sql(
        f"CALL {CATALOG}.system.expire_snapshots(table => '{database}.lines', retain_last => 1)"
    ).collect()


def main(argv: list[str]) -> int:
    spark = SparkSession.builder.getOrCreate()
    try:
        exercise(spark, Path(argv[1]), argv[2])
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
