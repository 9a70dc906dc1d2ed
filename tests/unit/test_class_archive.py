"""The class archive `make setup` records is the one local Spark drivers map: a driver
started with its option loads Spark's and Iceberg's classes from it, not from the jars."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from duffbeer_local import class_archive, jars

pytestmark = pytest.mark.spark

SCRIPT = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.range(10).selectExpr("id % 3 AS k").groupBy("k").count().collect()
spark.stop()
"""
ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"


def test_without_an_archive_a_driver_gets_no_option(tmp_path: Path) -> None:
    assert class_archive.java_options(tmp_path / "never-recorded.jsa") == ""


def test_a_driver_loads_its_classes_from_the_recorded_archive(tmp_path: Path) -> None:
    if not class_archive.DEFAULT_ARCHIVE.is_file():
        pytest.skip("no class archive: `make setup` printed why it could not record one")
    # Given a driver started as local mode starts one, with the archive's option
    log = tmp_path / "class-load.log"
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    java = f"{class_archive.java_options()} -Xlog:class+load=info:file={log}"
    command = [
        str(Path(sys.executable).with_name("spark-submit")),
        "--master",
        "local[1]",
        "--jars",
        ",".join(str(path) for path in jars.jar_paths()),
        "--conf",
        f"spark.sql.extensions={ICEBERG_EXTENSIONS}",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.driver.host=127.0.0.1",
        "--conf",
        "spark.driver.bindAddress=127.0.0.1",
        "--conf",
        f"spark.driver.extraJavaOptions={java}",
        str(script),
    ]
    environment = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    # When it runs a query
    result = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # Then most classes, Iceberg's (from --jars) among them, come from the archive
    loads = log.read_text().splitlines()
    shared = [line for line in loads if line.endswith("source: shared objects file (top)")]
    from_jars = [line for line in loads if "source: jar:" in line or "source: file:" in line]
    assert len(shared) > 10 * len(from_jars), (len(shared), len(from_jars))
    assert any(f" {ICEBERG_EXTENSIONS} source: shared objects file" in line for line in shared)
