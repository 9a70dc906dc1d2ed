"""Parsing the Glue job's arguments (getResolvedOptions with optional names)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from duffbeer.errors import ConfigurationError
from glue_jobs.orders.args import JobArgs

NOW = datetime(2026, 11, 28, 9, 30, 5, tzinfo=UTC)
BASE = [
    "transform_orders.py",
    "--JOB_NAME",
    "transform_orders",
    "--input_path",
    "s3://in/raw/orders.csv",
    "--output_path",
    "s3://out/",
    "--batch_id",
    "orders-0123456789ab",
]


def test_required_only_takes_defaults_from_the_clock() -> None:
    # Given only the required arguments (plus Glue's own, which are ignored)
    argv = [*BASE, "--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://t/"]
    # When parsed
    args = JobArgs.from_args(argv, now=NOW)
    # Then optional values take their documented defaults
    assert args.run_id.startswith("run-20261128T093005Z-")
    assert args == JobArgs(
        job_name="transform_orders",
        input_path="s3://in/raw/orders.csv",
        output_path="s3://out",
        batch_id="orders-0123456789ab",
        run_id=args.run_id,
        ingest_date=date(2026, 11, 28),
        source_event_time=datetime(2026, 11, 28, tzinfo=UTC),
        source_uri="s3://in/raw/orders.csv",
        source_etag=None,
        source_version_id=None,
        source_sequencer=None,
        rerun_at=None,
        max_reject_ratio=0.05,
        max_file_bytes=2 * 1024**3,
    )


def test_every_optional_argument() -> None:
    # Given every optional argument, one in --name=value form
    argv = [
        *BASE,
        "--ingest_date",
        "2026-11-27",
        "--run_id",
        "orders-0123456789ab-feedc0de",
        "--source_event_time=2026-11-27T23:59:58.123Z",
        "--source_uri",
        "s3://raw-bucket/incoming/orders 1.csv",
        "--source_etag",
        '"abc"',
        "--source_version_id",
        "v1",
        "--source_sequencer",
        "0062A4F0C4D2F1E8A1",
        "--rerun_at",
        "2026-11-28T10:00:00+00:00",
        "--max_reject_ratio",
        "0.1",
        "--max_file_bytes",
        "1000",
    ]
    # When parsed
    args = JobArgs.from_args(argv, now=NOW)
    # Then each one is used
    assert args == JobArgs(
        job_name="transform_orders",
        input_path="s3://in/raw/orders.csv",
        output_path="s3://out",
        batch_id="orders-0123456789ab",
        run_id="orders-0123456789ab-feedc0de",
        ingest_date=date(2026, 11, 27),
        source_event_time=datetime(2026, 11, 27, 23, 59, 58, 123000, tzinfo=UTC),
        source_uri="s3://raw-bucket/incoming/orders 1.csv",
        source_etag='"abc"',
        source_version_id="v1",
        source_sequencer="0062A4F0C4D2F1E8A1",
        rerun_at="2026-11-28T10:00:00.000Z",
        max_reject_ratio=0.1,
        max_file_bytes=1000,
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ingest_date", "2026-13-01"], "--ingest_date '2026-13-01' is not a YYYY-MM-DD date"),
        (["--run_id", "../etc"], "--run_id '../etc' must be 1-128 characters"),
        (["--max_reject_ratio", "2"], "--max_reject_ratio 2.0 must be between 0 and 1"),
        (["--max_file_bytes", "0"], "--max_file_bytes 0 must be positive"),
        (["--source_event_time", "yesterday"], "--source_event_time 'yesterday' is not ISO-8601"),
        (["--rerun_at", "later"], "--rerun_at 'later' is not ISO-8601"),
    ],
)
def test_invalid_values_are_configuration_errors(extra: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        JobArgs.from_args([*BASE, *extra], now=NOW)
    assert str(raised.value).startswith(message)


def test_missing_required_argument() -> None:
    with pytest.raises(ConfigurationError, match="the job needs --JOB_NAME --input_path"):
        JobArgs.from_args(BASE[:-2], now=NOW)
