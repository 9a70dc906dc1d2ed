"""clean_up against moto: which runs of a batch go, and the race that once left a batch pointer
naming a deleted run (two runs of one upload, a hand re-run publishing while CleanUp ran)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from duffbeer import history, naming
from lambdas.clean_up import cleanup
from lambdas.clean_up.cleanup import Grace, clean_up
from lambdas.publish_batch.publish import publish_run

pytestmark = pytest.mark.functional

BUCKET = "duffbeer-processed-orders"
BATCH = "orders-aaaaaaaaaaaa"
UPLOADED = "2026-11-28T08:00:00.000Z"
GRACE = Grace(reader=timedelta(hours=1), orphan=timedelta(hours=24))


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put_run(
    s3: Any,
    batch: str,
    run: str,
    *,
    event_time: str = UPLOADED,
    rerun_at: str | None = None,
    status: str | None = "SUCCEEDED",
) -> None:
    """A run's objects and (unless `status` is None: a job that died) its run manifest."""
    prefix = naming.run_prefix(batch, run)
    lines = f"{prefix}{naming.ORDER_LINES_DIR}/point_of_sale_channel=Retail/order_date=2026-11-28/"
    s3.put_object(Bucket=BUCKET, Key=f"{lines}part-00000.parquet", Body=b"p")
    if status is None:
        return
    outputs = {"order_lines": f"{prefix}{naming.ORDER_LINES_DIR}/", "reports": {}, "rejects": ""}
    document = {
        "manifest_version": 1,
        "batch_id": batch,
        "run_id": run,
        "status": status,
        "error": None,
        "source": {
            "path": "s3://in/a.csv",
            "size": 1,
            "event_time": event_time,
            "sequencer": "0055AED6DCD90281E5",
            "rerun_at": rerun_at,
        },
        "ingest_date": event_time[:10],
        "started_at": event_time,
        "finished_at": event_time,
        "timings": {},
        "rows_read": 1,
        "rows_valid": 1,
        "rows_rejected": 0,
        "rejects_by_reason": {},
        "duplicates": 0,
        "total_sales": "1.00",
        "total_units": 1,
        "partitions": [
            {
                "point_of_sale_channel": "Retail",
                "order_date": "2026-11-28",
                "location": lines,
                "rows": 1,
            }
        ],
        "outputs": outputs,
        "warnings": [],
        "published": None,
    }
    s3.put_object(Bucket=BUCKET, Key=naming.run_manifest_key(batch, run), Body=json.dumps(document))


def publish(s3: Any, run: str, now: datetime, batch: str = BATCH) -> str:
    return publish_run(batch_id=batch, run_id=run, bucket=BUCKET, client=s3, now=now).outcome


def runs(s3: Any, batch: str = BATCH) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=f"{naming.RUNS_PREFIX}{batch}/"
    )
    return {o["Key"].split("/")[2] for page in pages for o in page.get("Contents", [])}


def pointer_run(s3: Any) -> str:
    body = s3.get_object(Bucket=BUCKET, Key=naming.manifest_key(BATCH))["Body"].read()
    return str(json.loads(body)["published"]["run_id"])


def test_replaced_runs_go_after_the_grace_period_and_newer_ones_stay(s3: Any) -> None:
    # Given r2 published; r1, an older upload; r3 a newer upload not yet published; r4 a
    # job that died without a run manifest; and another batch's run
    now = datetime.now(UTC)
    put_run(s3, BATCH, "r1", event_time="2026-11-28T07:00:00.000Z")
    put_run(s3, BATCH, "r2")
    publish(s3, "r2", now)
    put_run(s3, BATCH, "r3", event_time="2026-11-28T09:00:00.000Z")
    put_run(s3, BATCH, "r4", status=None)
    put_run(s3, "orders-bbbbbbbbbbbb", "r1")

    # Within the grace period nothing goes
    assert clean_up(batch_id=BATCH, bucket=BUCKET, s3=s3, now=now, grace=GRACE).deleted_runs == []
    # After it, r1 goes: no later publication can name it; r3 stays, it may be published
    later = now + timedelta(hours=2)
    result = clean_up(batch_id=BATCH, bucket=BUCKET, s3=s3, now=later, grace=GRACE)
    assert (result.deleted_runs, result.errors) == (["r1"], [])
    assert runs(s3) == {"r2", "r3", "r4"}
    assert runs(s3, "orders-bbbbbbbbbbbb") == {"r1"}
    # And the dead job's files go once they are older than the orphan period
    result = clean_up(
        batch_id=BATCH, bucket=BUCKET, s3=s3, now=later + timedelta(days=1), grace=GRACE
    )
    assert result.deleted_runs == ["r4"]


def test_a_deleted_run_leaves_the_run_index_and_a_failed_run_stays_in_it(s3: Any) -> None:
    # Given r1 published, then replaced by r2 (a later upload), both recorded by the Store
    # step, and r3, a failed run recorded by QuarantineInput
    now = datetime.now(UTC)
    put_run(s3, BATCH, "r1", event_time="2026-11-28T07:00:00.000Z")
    publish(s3, "r1", now)
    put_run(s3, BATCH, "r2")
    publish(s3, "r2", now)
    put_run(s3, BATCH, "r3", event_time="2026-11-28T09:00:00.000Z", status="FAILED")
    failed_at = history.run_time("2026-11-28T09:00:00.000Z")
    history.record(s3, BUCKET, batch_id=BATCH, run_id="r3", at=failed_at, outcome="quarantined")
    # When CleanUp deletes r1 after the grace period, and r3 after the orphan period
    result = clean_up(
        batch_id=BATCH, bucket=BUCKET, s3=s3, now=now + timedelta(days=2), grace=GRACE
    )
    # Then r1's entry goes with its files; r3's stays (its quarantine report describes it)
    assert sorted(result.deleted_runs) == ["r1", "r3"]
    entries, _ = history.page(s3, BUCKET, size=10, after=None)
    assert [e.entry.run_id for e in entries] == ["r3", "r2"]


def test_a_hand_rerun_publishing_while_clean_up_runs_keeps_its_files(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an upload's automatic run published two hours ago, and a hand re-run of the
    # same upload (equal event time) that has just succeeded
    now = datetime.now(UTC)
    put_run(s3, BATCH, "run-auto")
    publish(s3, "run-auto", now - timedelta(hours=2))
    put_run(s3, BATCH, "run-manual", rerun_at=(now - timedelta(minutes=5)).isoformat())
    # When CleanUp (of another execution of the batch) reads the pointer, and the re-run's
    # Store step publishes right after that read
    reads = []
    original = cleanup._pointer

    def pointer_then_rerun_publishes(client: Any, bucket: str, batch_id: str) -> Any:
        found = original(client, bucket, batch_id)
        if not reads:
            assert publish(s3, "run-manual", now) == "published"
        reads.append(found["run_id"] if found else None)
        return found

    monkeypatch.setattr(cleanup, "_pointer", pointer_then_rerun_publishes)
    result = clean_up(batch_id=BATCH, bucket=BUCKET, s3=s3, now=now, grace=GRACE)
    # Then CleanUp saw the automatic run published, deleted nothing, and the pointer names
    # the re-run, whose files are all there
    assert reads[0] == "run-auto"
    assert (result.deleted_runs, result.errors) == ([], [])
    assert pointer_run(s3) == "run-manual"
    assert runs(s3) == {"run-auto", "run-manual"}
    # And an hour later the automatic run goes, never the published re-run
    later = now + timedelta(hours=1, minutes=1)
    monkeypatch.setattr(cleanup, "_pointer", original)
    result = clean_up(batch_id=BATCH, bucket=BUCKET, s3=s3, now=later, grace=GRACE)
    assert result.deleted_runs == ["run-auto"]
    assert runs(s3) == {"run-manual"}
    assert pointer_run(s3) == "run-manual"
