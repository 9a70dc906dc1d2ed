"""publish_batch against moto: a conditional write of the batch pointer, never an older upload."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from duffbeer import history
from duffbeer.errors import BatchNotPublishedError
from duffbeer.manifest import ALREADY_PUBLISHED, PUBLISH, SUPERSEDED
from lambdas.publish_batch.publish import publish_run

pytestmark = pytest.mark.functional

BUCKET = "duffbeer-processed-orders"
BATCH = "orders-aaaaaaaaaaaa"
OTHER_BATCH = "orders-bbbbbbbbbbbb"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


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
    rerun_at: str | None = None,
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
            "sequencer": "0055AED6DCD90281E5",
            "rerun_at": rerun_at,
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
    rerun_at: str | None = None,
) -> dict[str, Any]:
    """Write the objects and the run manifest of one run, as the Glue job does."""
    block = _published(batch, run, event_time, list(channels))
    for partition in block["partitions"]:
        s3.put_object(Bucket=BUCKET, Key=f"{partition['location']}part-00000.parquet", Body=b"p")
    for prefix in block["outputs"]["reports"].values():
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}part-00000.parquet", Body=b"r")
    manifest = _manifest(
        batch,
        run,
        status=status,
        event_time=event_time,
        channels=list(channels),
        published=None,
        rerun_at=rerun_at,
    )
    s3.put_object(
        Bucket=BUCKET, Key=f"runs/{batch}/{run}/_manifest.json", Body=json.dumps(manifest)
    )
    return manifest


def _pointer(s3: Any) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=f"manifests/{BATCH}.json")["Body"].read())


def _publish(s3: Any, run: str) -> Any:
    return publish_run(batch_id=BATCH, run_id=run, bucket=BUCKET, client=s3, now=NOW)


def test_first_run_is_published_with_its_figures(s3: Any) -> None:
    # Given a successful run of a new batch
    run = _write_run(s3, BATCH, "run-1")

    # When its Store step runs
    result = _publish(s3, "run-1")

    # Then the batch pointer is the run manifest with a published block describing the run
    assert (result.outcome, result.published_run_id, result.partitions) == (PUBLISH, "run-1", 2)
    assert (result.rows_read, result.rows_valid, result.rows_rejected) == (5, 4, 1)
    assert (result.latency_seconds, result.transform_seconds) == (4 * 3600.0, 0.0)
    pointer = _pointer(s3)
    assert {k: v for k, v in pointer.items() if k != "published"} == {
        k: v for k, v in run.items() if k != "published"
    }
    assert pointer["published"] == {
        **_published(BATCH, "run-1", "2026-11-28T08:00:00+00:00", ["Retail", "B2B"]),
        "published_at": "2026-11-28T12:00:00.000Z",
        "rows_valid": 4,
    }


def test_retry_of_the_same_run_changes_nothing(s3: Any) -> None:
    _write_run(s3, BATCH, "run-1")
    _publish(s3, "run-1")
    before = s3.get_object(Bucket=BUCKET, Key=f"manifests/{BATCH}.json")["Body"].read()

    again = _publish(s3, "run-1")

    assert (again.outcome, again.published_run_id) == (ALREADY_PUBLISHED, "run-1")
    assert s3.get_object(Bucket=BUCKET, Key=f"manifests/{BATCH}.json")["Body"].read() == before


def test_newer_upload_replaces_the_publication(s3: Any) -> None:
    _write_run(s3, BATCH, "run-1", event_time="2026-11-28T08:00:00+00:00")
    _publish(s3, "run-1")
    _write_run(s3, BATCH, "run-2", event_time="2026-11-28T09:00:00+00:00", channels=("Online",))

    result = _publish(s3, "run-2")

    assert (result.outcome, result.published_run_id) == (PUBLISH, "run-2")
    assert _pointer(s3)["published"]["run_id"] == "run-2"
    assert [p["point_of_sale_channel"] for p in _pointer(s3)["published"]["partitions"]] == [
        "Online"
    ]


def test_older_upload_finishing_last_is_superseded(s3: Any) -> None:
    # Given the run of a 09:00 upload published
    _write_run(s3, BATCH, "run-new", event_time="2026-11-28T09:00:00+00:00")
    _publish(s3, "run-new")
    before = s3.get_object(Bucket=BUCKET, Key=f"manifests/{BATCH}.json")["Body"].read()
    # When the run of an earlier (08:00) upload of the same key finishes afterwards
    _write_run(s3, BATCH, "run-old", event_time="2026-11-28T08:00:00+00:00")
    result = _publish(s3, "run-old")

    # Then the pointer still publishes the newer upload, byte for byte
    assert (result.outcome, result.published_run_id) == (SUPERSEDED, "run-new")
    assert s3.get_object(Bucket=BUCKET, Key=f"manifests/{BATCH}.json")["Body"].read() == before


def test_a_hand_rerun_of_the_same_upload_republishes_and_its_automatic_run_never_returns(
    s3: Any,
) -> None:
    # Given an upload's automatic run published
    _write_run(s3, BATCH, "run-auto")
    _publish(s3, "run-auto")
    # When a hand re-run of the same upload (same event time and sequencer) succeeds
    _write_run(s3, BATCH, "run-manual", rerun_at="2026-11-28T09:00:00.000Z")
    # Then it is published: that is how a fix of the transform reaches a batch
    assert _publish(s3, "run-manual").outcome == PUBLISH
    assert _pointer(s3)["published"]["run_id"] == "run-manual"
    # And the automatic run, retried later, is superseded by it
    assert _publish(s3, "run-auto").outcome == SUPERSEDED
    assert _pointer(s3)["published"]["run_id"] == "run-manual"


def test_every_decided_run_is_recorded_in_the_run_index_newest_run_first(s3: Any) -> None:
    # Given an upload's automatic run, a hand re-run of it, and a failed run of another batch
    _write_run(s3, BATCH, "run-auto")
    _write_run(s3, BATCH, "run-manual", rerun_at="2026-11-28T09:00:00.000Z")
    _write_run(s3, OTHER_BATCH, "run-1", status="FAILED", event_time="2026-11-28T10:00:00Z")
    # When the Store step decides about each (the automatic run last, and twice)
    _publish(s3, "run-manual")
    _publish(s3, "run-auto")
    _publish(s3, "run-auto")
    with pytest.raises(BatchNotPublishedError):
        publish_run(batch_id=OTHER_BATCH, run_id="run-1", bucket=BUCKET, client=s3, now=NOW)
    # Then both runs of the batch are recorded once, the re-run first (it ran at 09:00),
    # each with what was decided; the failed run is left to QuarantineInput
    entries, more = history.page(s3, BUCKET, size=10, after=None)
    assert [(e.entry.batch_id, e.entry.run_id) for e in entries] == [
        (BATCH, "run-manual"),
        (BATCH, "run-auto"),
    ]
    assert more is None
    assert [e.entry.run_time for e in entries] == [
        datetime(2026, 11, 28, 9, tzinfo=UTC),
        datetime(2026, 11, 28, 8, tzinfo=UTC),
    ]
    outcomes = [
        json.loads(s3.get_object(Bucket=BUCKET, Key=e.entry.key)["Body"].read())["outcome"]
        for e in entries
    ]
    assert outcomes == [PUBLISH, SUPERSEDED]


def test_failed_run_is_not_published(s3: Any) -> None:
    _write_run(s3, BATCH, "run-1", event_time="2026-11-27T08:00:00+00:00")
    _publish(s3, "run-1")
    _write_run(s3, BATCH, "run-2", status="FAILED")

    with pytest.raises(
        BatchNotPublishedError, match=r"run run-2 ended FAILED \(RejectThresholdExceededError"
    ):
        _publish(s3, "run-2")
    assert _pointer(s3)["published"]["run_id"] == "run-1"


def test_run_without_run_manifest_is_an_error(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"runs/{BATCH}/run-1/order_lines/x.parquet", Body=b"p")

    with pytest.raises(BatchNotPublishedError, match=r"_manifest\.json does not exist"):
        _publish(s3, "run-1")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="manifests/")


def test_listed_partition_without_objects_is_an_error(s3: Any) -> None:
    _write_run(s3, BATCH, "run-1")
    s3.delete_object(
        Bucket=BUCKET,
        Key=f"runs/{BATCH}/run-1/order_lines/point_of_sale_channel=B2B/order_date=2026-11-28/"
        "part-00000.parquet",
    )

    with pytest.raises(BatchNotPublishedError, match="point_of_sale_channel=B2B"):
        _publish(s3, "run-1")


def test_a_three_year_backfill_publishes_with_one_listing_of_the_run(s3: Any) -> None:
    # Given a valid run of 3 years x 4 channels: 4,384 partitions, one object each
    run = _write_run(s3, BATCH, "run-1")
    root = f"runs/{BATCH}/run-1/order_lines/"
    first = date(2024, 1, 1)
    partitions = [
        {
            "point_of_sale_channel": channel,
            "order_date": day.isoformat(),
            "location": f"{root}point_of_sale_channel={channel}/order_date={day.isoformat()}/",
            "rows": 1,
        }
        for channel in ("B2B", "Online", "Retail", "Wholesale")
        for day in (first + timedelta(days=n) for n in range(1096))
    ]
    for partition in partitions:
        s3.put_object(Bucket=BUCKET, Key=f"{partition['location']}part-0.parquet", Body=b"p")
    run["partitions"] = partitions
    s3.put_object(Bucket=BUCKET, Key=f"runs/{BATCH}/run-1/_manifest.json", Body=json.dumps(run))
    listings: list[str] = []
    s3.meta.events.register(
        "provide-client-params.s3.ListObjectsV2",
        lambda params, **_: listings.append(params["Prefix"]),
    )
    # When its Store step runs
    result = _publish(s3, "run-1")
    # Then it is published, its outputs verified by one paginated listing of the run's
    # prefix before the conditional write and one after (1,000 keys a page), not one
    # request per partition
    assert (result.outcome, result.partitions) == (PUBLISH, 4384)
    assert _pointer(s3)["published"]["run_id"] == "run-1"
    pages = -(-(4384 + 2 + 3 + 1) // 1000)
    assert listings == [f"runs/{BATCH}/run-1/"] * (2 * pages)


def test_a_write_that_lands_first_makes_the_step_decide_again(s3: Any) -> None:
    # Given run-old (08:00) about to publish, and run-new (09:00) publishing in between its
    # read of the pointer and its conditional write
    _write_run(s3, BATCH, "run-old", event_time="2026-11-28T08:00:00+00:00")
    _write_run(s3, BATCH, "run-new", event_time="2026-11-28T09:00:00+00:00")
    raced: list[str] = []

    def publish_the_newer_run_first(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == f"manifests/{BATCH}.json" and not raced:
            raced.append("run-new")
            publish_run(batch_id=BATCH, run_id="run-new", bucket=BUCKET, client=other, now=NOW)

    other = boto3.client("s3", region_name="us-east-1")
    s3.meta.events.register("before-parameter-build.s3.PutObject", publish_the_newer_run_first)

    # When run-old's Store step runs
    result = _publish(s3, "run-old")

    # Then its conditional write fails, it reads the newer pointer and stands down
    assert raced == ["run-new"]
    assert (result.outcome, result.published_run_id, result.conflicts) == (
        SUPERSEDED,
        "run-new",
        1,
    )
    assert _pointer(s3)["published"]["run_id"] == "run-new"


def test_racing_runs_of_one_batch_always_leave_the_newer_published(moto_server: str) -> None:
    # Given two runs of one key, the newer upload's and the older upload's, against a real
    # S3 endpoint, started together many times over
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    _write_run(s3, BATCH, "run-old", event_time="2026-11-28T08:00:00+00:00")
    _write_run(s3, BATCH, "run-new", event_time="2026-11-28T09:00:00+00:00")

    def run(run_id: str, barrier: threading.Barrier, errors: list[BaseException]) -> None:
        client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
        barrier.wait()
        try:
            publish_run(batch_id=BATCH, run_id=run_id, bucket=BUCKET, client=client, now=NOW)
        except BaseException as e:  # reported below, in the test thread
            errors.append(e)

    for _ in range(10):
        s3.delete_object(Bucket=BUCKET, Key=f"manifests/{BATCH}.json")
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=run, args=(r, barrier, errors)) for r in ("run-old", "run-new")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then neither fails the other, and the newer upload is the one published
        assert errors == []
        assert _pointer(s3)["published"]["run_id"] == "run-new"
