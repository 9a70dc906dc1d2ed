"""publish_batch against moto: verify the published run, clean older runs, never other batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from duffbeer.errors import BatchNotPublishedError
from lambdas.publish_batch.publish import PUBLISHED, SUPERSEDED, verify_and_clean

pytestmark = pytest.mark.functional

BUCKET = "duffbeer-processed-orders"
BATCH = "orders-aaaaaaaaaaaa"
OTHER_BATCH = "orders-bbbbbbbbbbbb"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STALE_AFTER = timedelta(hours=24)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _published(batch: str, run: str, event_time: str, channels: list[str]) -> dict[str, Any]:
    root = f"runs/{batch}/{run}/"
    return {
        "run_id": run,
        "published_at": event_time,
        "source_event_time": event_time,
        "partitions": [
            {
                "point_of_sale_channel": channel,
                "order_date": "2026-11-28",
                "location": (
                    f"{root}order_lines/point_of_sale_channel={channel}/order_date=2026-11-28/"
                ),
                "rows": 2,
            }
            for channel in channels
        ],
        "outputs": {
            "order_lines": f"{root}order_lines/",
            "reports": {
                "client_sales": f"{root}reports/client_sales/",
                "product_channel_sales": f"{root}reports/product_channel_sales/",
                "order_status": f"{root}reports/order_status/",
            },
            "rejects": f"{root}rejects/",
        },
        "rows_valid": 2 * len(channels),
        "total_sales": "42.00",
    }


def _manifest(
    batch: str,
    run: str,
    *,
    status: str,
    event_time: str,
    channels: list[str],
    published: dict[str, Any] | None,
) -> dict[str, Any]:
    own = _published(batch, run, event_time, channels)
    return {
        "manifest_version": 1,
        "batch_id": batch,
        "run_id": run,
        "status": status,
        "error": None
        if status == "SUCCEEDED"
        else {"type": "RejectThresholdExceededError", "message": "12% of rows rejected"},
        "source": {
            "path": f"s3://duffbeer-input-orders/{batch}.csv",
            "size": 100,
            "event_time": event_time,
        },
        "ingest_date": event_time[:10],
        "started_at": event_time,
        "finished_at": event_time,
        "timings": {},
        "rows_read": 2 * len(channels) + 1,
        "rows_valid": 2 * len(channels),
        "rows_rejected": 1,
        "rejects_by_reason": {"bad_price": 1},
        "duplicates": 0,
        "total_sales": "42.00",
        "total_units": 10,
        "partitions": own["partitions"],
        "outputs": own["outputs"],
        "warnings": [],
        "published": published,
    }


def _write_run(
    s3: Any,
    batch: str,
    run: str,
    *,
    status: str = "SUCCEEDED",
    event_time: str = "2026-11-28T08:00:00+00:00",
    channels: tuple[str, ...] = ("Retail", "B2B"),
    previous: dict[str, Any] | None = None,
    publish: bool = True,
) -> dict[str, Any]:
    """Write the objects and the run manifest of one run; publish it like the Glue job does."""
    block = _published(batch, run, event_time, list(channels))
    for partition in block["partitions"]:
        s3.put_object(Bucket=BUCKET, Key=f"{partition['location']}part-00000.parquet", Body=b"p")
    for prefix in block["outputs"]["reports"].values():
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}part-00000.parquet", Body=b"r")
    published = block if status == "SUCCEEDED" else previous
    manifest = _manifest(
        batch,
        run,
        status=status,
        event_time=event_time,
        channels=list(channels),
        published=published,
    )
    body = json.dumps(manifest).encode()
    s3.put_object(Bucket=BUCKET, Key=f"runs/{batch}/{run}/_manifest.json", Body=body)
    if publish:
        s3.put_object(Bucket=BUCKET, Key=f"manifests/{batch}.json", Body=body)
    return manifest


def _keys(s3: Any, prefix: str = "") -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def _verify(s3: Any, run: str) -> Any:
    return verify_and_clean(
        batch_id=BATCH, run_id=run, bucket=BUCKET, client=s3, now=NOW, stale_after=STALE_AFTER
    )


def test_published_run_is_verified_and_older_runs_are_deleted(s3: Any) -> None:
    # Given an older successful run, a failed run, then the run that just published
    first = _write_run(s3, BATCH, "run-1", event_time="2026-11-27T08:00:00+00:00")
    _write_run(s3, BATCH, "run-2", status="FAILED", previous=first["published"])
    _write_run(s3, BATCH, "run-3", event_time="2026-11-28T09:00:00+00:00", channels=("Online",))
    # ... and another batch with its own runs
    _write_run(s3, OTHER_BATCH, "run-1")
    _write_run(s3, OTHER_BATCH, "run-0", status="FAILED", publish=False)
    other_before = _keys(s3, f"runs/{OTHER_BATCH}/")

    # When the Store step of run-3 runs
    result = _verify(s3, "run-3")

    # Then it is published, the older runs are gone, the other batch is untouched
    assert (result.outcome, result.published_run_id, result.partitions) == (PUBLISHED, "run-3", 1)
    assert (result.rows_read, result.rows_valid, result.rows_rejected) == (3, 2, 1)
    assert (result.latency_seconds, result.transform_seconds) == (3 * 3600.0, 0.0)
    assert sorted(result.deleted_runs) == ["run-1", "run-2"]
    assert result.deleted_objects == 2 * (2 + 3 + 1)
    assert result.cleanup_errors == []
    assert {key.split("/")[2] for key in _keys(s3, f"runs/{BATCH}/")} == {"run-3"}
    assert _keys(s3, f"runs/{OTHER_BATCH}/") == other_before


def test_running_twice_is_harmless(s3: Any) -> None:
    # Given a published run whose older run was already cleaned
    _write_run(s3, BATCH, "run-1", event_time="2026-11-27T08:00:00+00:00")
    _write_run(s3, BATCH, "run-2")
    _verify(s3, "run-2")
    before = _keys(s3)

    # When the step is retried
    again = _verify(s3, "run-2")

    # Then it verifies again and deletes nothing more
    assert (again.outcome, again.deleted_runs, again.deleted_objects) == (PUBLISHED, [], 0)
    assert _keys(s3) == before


def test_newer_run_in_flight_and_recent_orphans_are_kept(s3: Any) -> None:
    # Given the published run, a newer run still writing (no run manifest yet), and a newer
    # run that finished successfully but has not written the batch pointer yet
    _write_run(s3, BATCH, "run-2", event_time="2026-11-28T08:00:00+00:00")
    s3.put_object(Bucket=BUCKET, Key=f"runs/{BATCH}/run-4/order_lines/x.parquet", Body=b"p")
    _write_run(s3, BATCH, "run-3", event_time="2026-11-28T10:00:00+00:00", publish=False)

    # When run-2's Store step runs (its clock says the in-flight objects are fresh)
    result = verify_and_clean(
        batch_id=BATCH,
        run_id="run-2",
        bucket=BUCKET,
        client=s3,
        now=datetime.now(UTC),
        stale_after=STALE_AFTER,
    )

    # Then neither newer run loses anything
    assert result.deleted_runs == []
    assert {key.split("/")[2] for key in _keys(s3, f"runs/{BATCH}/")} == {"run-2", "run-3", "run-4"}


def test_stale_orphan_of_a_crashed_run_is_deleted(s3: Any) -> None:
    # Given a run prefix without a run manifest, last written long ago
    _write_run(s3, BATCH, "run-2")
    s3.put_object(Bucket=BUCKET, Key=f"runs/{BATCH}/run-0/order_lines/x.parquet", Body=b"p")

    # When the Store step runs two days later
    result = verify_and_clean(
        batch_id=BATCH,
        run_id="run-2",
        bucket=BUCKET,
        client=s3,
        now=datetime.now(UTC) + timedelta(days=2),
        stale_after=STALE_AFTER,
    )

    # Then the orphan is removed
    assert (result.deleted_runs, result.deleted_objects) == (["run-0"], 1)


def test_failed_run_is_not_published(s3: Any) -> None:
    # Given a good run-1, then run-2 failing (its pointer keeps run-1 published)
    good = _write_run(s3, BATCH, "run-1", event_time="2026-11-27T08:00:00+00:00")
    _write_run(s3, BATCH, "run-2", status="FAILED", previous=good["published"])

    # When run-2's Store step runs / Then it fails with the job's error, run-1 stays intact
    with pytest.raises(
        BatchNotPublishedError, match=r"run run-2 ended FAILED \(RejectThresholdExceededError"
    ):
        _verify(s3, "run-2")
    assert {key.split("/")[2] for key in _keys(s3, f"runs/{BATCH}/")} == {"run-1", "run-2"}


def test_missing_batch_manifest_is_an_error(s3: Any) -> None:
    # Given a run that wrote outputs but no batch manifest
    _write_run(s3, BATCH, "run-1", publish=False)

    # When its Store step runs / Then nothing counts as published
    with pytest.raises(BatchNotPublishedError, match=f"manifests/{BATCH}.json does not exist"):
        _verify(s3, "run-1")


def test_pointer_naming_another_run_is_an_error(s3: Any) -> None:
    # Given a pointer naming run-9 while this run (run-1) left no run manifest
    _write_run(s3, BATCH, "run-9")

    # When run-1's Store step runs / Then the mismatch is reported
    with pytest.raises(BatchNotPublishedError, match="names run run-9, and run run-1 wrote no"):
        _verify(s3, "run-1")


def test_listed_partition_without_objects_is_an_error(s3: Any) -> None:
    # Given a published run one of whose listed partitions holds no object
    _write_run(s3, BATCH, "run-1")
    s3.delete_object(
        Bucket=BUCKET,
        Key=f"runs/{BATCH}/run-1/order_lines/point_of_sale_channel=B2B/order_date=2026-11-28/"
        "part-00000.parquet",
    )

    # When the Store step runs / Then the hole is named
    with pytest.raises(BatchNotPublishedError, match="point_of_sale_channel=B2B"):
        _verify(s3, "run-1")


def test_run_overtaken_by_a_newer_upload_is_superseded(s3: Any) -> None:
    # Given this run (older upload) finished after a newer upload's run published
    _write_run(s3, BATCH, "run-old", event_time="2026-11-28T08:00:00+00:00", publish=False)
    _write_run(s3, BATCH, "run-new", event_time="2026-11-28T09:00:00+00:00")

    # When the older run's Store step runs
    result = _verify(s3, "run-old")

    # Then it succeeds as superseded and its own outputs are removed
    assert (result.outcome, result.published_run_id, result.deleted_runs) == (
        SUPERSEDED,
        "run-new",
        ["run-old"],
    )
