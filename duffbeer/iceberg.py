"""Apache Iceberg settings shared by the Glue jobs, the deploy and local mode: one Spark catalog.

The current state lives in Iceberg tables registered in the Glue Data Catalog (Iceberg's
GlueCatalog), their files under the processed bucket's `warehouse/` prefix. Glue 5.0 ships
Iceberg 1.7.1 for Spark 3.5.4 (`--datalake-formats iceberg`); local Spark runs the same
version from the pinned jars (duffbeer_local/jars.py). Both configure the catalog with
`spark_conf`, on Glue through the job's `--conf` argument, locally on spark-submit, plus the
endpoint settings that point Iceberg's AWS clients at the local endpoint.
"""

from __future__ import annotations

from duffbeer import naming

ICEBERG_VERSION = "1.7.1"
# The Spark catalog name AWS's Glue documentation uses for Iceberg tables.
CATALOG = "glue_catalog"
_PREFIX = f"spark.sql.catalog.{CATALOG}"


def warehouse_uri(processed_bucket: str) -> str:
    """Where new Iceberg tables put their files: the processed bucket's warehouse prefix."""
    return f"s3://{processed_bucket}/{naming.WAREHOUSE_PREFIX}"


def spark_conf(warehouse: str) -> dict[str, str]:
    """The Spark settings that make `glue_catalog.<database>.<table>` an Iceberg table in the
    Glue Data Catalog, written with S3FileIO."""
    return {
        "spark.sql.extensions": (
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
        ),
        _PREFIX: "org.apache.iceberg.spark.SparkCatalog",
        f"{_PREFIX}.catalog-impl": "org.apache.iceberg.aws.glue.GlueCatalog",
        f"{_PREFIX}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{_PREFIX}.warehouse": warehouse,
        # Every statement reads the table's current metadata: another job's commit must be
        # seen at once (a cached table would hide it for up to 30 s).
        f"{_PREFIX}.cache-enabled": "false",
    }


def endpoint_conf(endpoint_url: str, region: str) -> dict[str, str]:
    """Catalog settings for an AWS-compatible endpoint (local mode): Glue and S3 at that
    address, path-style S3 addressing (a bucket is not a host name on 127.0.0.1)."""
    return {
        f"{_PREFIX}.glue.endpoint": endpoint_url,
        f"{_PREFIX}.s3.endpoint": endpoint_url,
        f"{_PREFIX}.s3.path-style-access": "true",
        f"{_PREFIX}.client.region": region,
    }


def glue_conf_argument(conf: dict[str, str]) -> str:
    """Spark settings as the value of a Glue job's `--conf` argument: Glue passes the
    argument's text to spark-submit after one `--conf`, so the settings after the first
    carry their own `--conf`."""
    return " --conf ".join(f"{key}={value}" for key, value in conf.items())


def parse_glue_conf_argument(text: str) -> dict[str, str]:
    """The settings of a Glue `--conf` argument (glue_conf_argument's inverse)."""
    conf: dict[str, str] = {}
    for part in text.split(" --conf "):
        key, sep, value = part.strip().partition("=")
        if key and sep:
            conf[key] = value
    return conf
