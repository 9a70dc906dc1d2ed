"""The one session-scoped local SparkSession, built with the Glue job's own settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence

import pytest
from pyspark.sql import DataFrame, Row, SparkSession

from glue_jobs.orders.session import build_spark


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
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
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


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
