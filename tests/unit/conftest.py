"""The one session-scoped local SparkSession, built with the Glue jobs' own settings, and the
Iceberg catalog it writes: Glue and S3 served by one moto server on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence

import pytest
from moto.server import ThreadedMotoServer
from pyspark.sql import DataFrame, Row, SparkSession

from duffbeer import iceberg
from duffbeer_local import class_archive, jars, moto_extensions
from glue_jobs.orders.session import build_spark
from tests.state_support import REGION, WAREHOUSE_BUCKET, new_state_database


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """A moto server for the session's Iceberg catalog, with local mode's moto extensions
    (among them Glue's optimistic lock on UpdateTable, which Iceberg's commits rely on)."""
    moto_extensions.install()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def spark(aws_endpoint: str) -> Iterator[SparkSession]:
    # Python workers (if any) must run this interpreter, not whatever python3 is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = build_spark(
        "duffbeer-unit-tests",
        {
            "spark.master": "local[2]",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "2g",
            "spark.sql.shuffle.partitions": "2",
            "spark.jars": ",".join(str(path) for path in jars.jar_paths()),
            "spark.driver.extraJavaOptions": class_archive.java_options(),
            **iceberg.spark_conf(iceberg.warehouse_uri(WAREHOUSE_BUCKET)),
            **iceberg.endpoint_conf(aws_endpoint, REGION),
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def state_database(aws_endpoint: str) -> str:
    """One test's own Glue database of state tables."""
    return new_state_database(aws_endpoint)


def _assert_rows(actual: DataFrame, expected: Sequence[Row]) -> None:
    """Whole-DataFrame equality, ignoring row order (like pyspark.testing's
    assertDataFrameEqual, whose package cannot be imported next to pandas 3)."""
    names = list(expected[0].asDict()) if expected else actual.columns
    assert actual.columns == names
    got = sorted((r.asDict(recursive=True) for r in actual.collect()), key=repr)
    want = sorted((r.asDict(recursive=True) for r in expected), key=repr)
    assert got == want


@pytest.fixture(scope="session")
def assert_rows() -> Callable[[DataFrame, Sequence[Row]], None]:
    return _assert_rows
