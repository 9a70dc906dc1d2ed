"""quarantine_batch against moto: the input is copied beside a machine-readable error report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from duffbeer import history
from lambdas.quarantine_batch.quarantine import FailedRun, quarantine

pytestmark = pytest.mark.functional

INPUT = "duffbeer-input-orders"
PROCESSED = "duffbeer-processed-orders"
NOW = datetime(2026, 11, 28, 8, 5, tzinfo=UTC)
BODY = b"client_id;client_name\n1;Moe\n"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=INPUT)
        client.create_bucket(Bucket=PROCESSED)
        yield client


def _failed(key: str, error: str, cause: str, version_id: str | None = None) -> FailedRun:
    return FailedRun(
        batch_id="semi-0123456789ab",
        run_id="semi-0123456789ab-00112233aabbccdd",
        bucket=INPUT,
        key=key,
        version_id=version_id,
        event_time="2026-11-28T08:00:00.000Z",
        error=error,
        cause=cause,
    )


def _report(s3: Any, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(s3.get_object(Bucket=PROCESSED, Key=key)["Body"].read())
    return data


def test_lambda_error_quarantines_the_input_with_a_report(s3: Any) -> None:
    # Given an input rejected by the Validate step (Lambda error payload as cause)
    s3.put_object(Bucket=INPUT, Key="incoming/semi.csv", Body=BODY)
    cause = json.dumps(
        {
            "errorType": "DelimiterError",
            "errorMessage": "s3://duffbeer-input-orders/incoming/semi.csv: delimited by ';'",
            "stackTrace": [],
        }
    )

    # When the failure path quarantines it
    result = quarantine(
        _failed("incoming/semi.csv", "DelimiterError", cause),
        processed_bucket=PROCESSED,
        client=s3,
        now=NOW,
    )

    # Then the bytes are copied under quarantine/<batch>/<run>/ next to error.json
    prefix = "quarantine/semi-0123456789ab/semi-0123456789ab-00112233aabbccdd/"
    assert result.as_dict() == {
        "location": f"s3://{PROCESSED}/{prefix}semi.csv",
        "report": f"s3://{PROCESSED}/{prefix}error.json",
        "reason": "DelimiterError",
    }
    assert s3.get_object(Bucket=PROCESSED, Key=f"{prefix}semi.csv")["Body"].read() == BODY
    assert _report(s3, f"{prefix}error.json") == {
        "report_version": 1,
        "batch_id": "semi-0123456789ab",
        "run_id": "semi-0123456789ab-00112233aabbccdd",
        "error": "DelimiterError",
        "reason": "DelimiterError",
        "message": "s3://duffbeer-input-orders/incoming/semi.csv: delimited by ';'",
        "cause": cause,
        "source": {
            "bucket": INPUT,
            "key": "incoming/semi.csv",
            "version_id": None,
            "event_time": "2026-11-28T08:00:00.000Z",
            "uri": f"s3://{INPUT}/incoming/semi.csv",
        },
        "quarantined_object": f"s3://{PROCESSED}/{prefix}semi.csv",
        "copy_error": None,
        "quarantined_at": "2026-11-28T08:05:00+00:00",
    }
    # ... and the input bucket holds nothing new (its notification cannot re-trigger)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=INPUT)["Contents"]] == ["incoming/semi.csv"]
    # ... and the run is recorded in the run index at its upload time, tagged to expire
    # with the report
    entries, _ = history.page(s3, PROCESSED, size=10, after=None)
    assert [(e.entry.run_id, e.entry.run_time) for e in entries] == [
        ("semi-0123456789ab-00112233aabbccdd", datetime(2026, 11, 28, 8, tzinfo=UTC))
    ]
    tags = s3.get_object_tagging(Bucket=PROCESSED, Key=entries[0].entry.key)["TagSet"]
    assert tags == [history.QUARANTINED_TAG]


def test_glue_failure_reason_is_the_job_exception(s3: Any) -> None:
    # Given the Glue job failed on the reject threshold (States.TaskFailed, JobRun as cause)
    s3.put_object(Bucket=INPUT, Key="incoming/bad-rows.csv", Body=BODY)
    cause = json.dumps(
        {
            "Id": "jr_0123",
            "JobName": "duffbeer-transform-orders",
            "JobRunState": "FAILED",
            "ErrorMessage": "RejectThresholdExceededError: 12.5% of 8 rows rejected (max 5.0%)",
        }
    )

    # When the failure path quarantines it
    result = quarantine(
        _failed("incoming/bad-rows.csv", "States.TaskFailed", cause),
        processed_bucket=PROCESSED,
        client=s3,
        now=NOW,
    )

    # Then the report keeps the caught error and names the job's exception as the reason
    report = _report(s3, result.report.split(f"s3://{PROCESSED}/", 1)[1])
    assert (report["error"], report["reason"], report["message"]) == (
        "States.TaskFailed",
        "RejectThresholdExceededError",
        "RejectThresholdExceededError: 12.5% of 8 rows rejected (max 5.0%)",
    )


def test_vanished_input_still_gets_a_report(s3: Any) -> None:
    # Given the input object was deleted before the failure path ran
    # When it is quarantined
    result = quarantine(
        _failed("incoming/gone.csv", "States.Timeout", "Task timed out"),
        processed_bucket=PROCESSED,
        client=s3,
        now=NOW,
    )

    # Then there is no copy, and the report says why
    assert result.location is None
    report = _report(s3, result.report.split(f"s3://{PROCESSED}/", 1)[1])
    assert (report["quarantined_object"], report["reason"], report["message"]) == (
        None,
        "States.Timeout",
        "Task timed out",
    )
    assert report["copy_error"].startswith("the input object no longer exists")


def test_input_named_like_the_report_does_not_overwrite_it(s3: Any) -> None:
    # Given a non-CSV input literally named error.json
    s3.put_object(Bucket=INPUT, Key="incoming/error.json", Body=b"{}")

    # When it is quarantined
    result = quarantine(
        _failed("incoming/error.json", "NotCsvError", "{}"),
        processed_bucket=PROCESSED,
        client=s3,
        now=NOW,
    )

    # Then the copy and the report are two objects
    assert result.location is not None
    assert result.location.endswith("/input-error.json")
    assert result.report.endswith("/error.json")


def test_versioned_input_copies_the_failed_version(s3: Any) -> None:
    # Given a versioned input bucket where a later upload replaced the failed version
    s3.put_bucket_versioning(Bucket=INPUT, VersioningConfiguration={"Status": "Enabled"})
    failed_version = s3.put_object(Bucket=INPUT, Key="incoming/v.csv", Body=BODY)["VersionId"]
    s3.put_object(Bucket=INPUT, Key="incoming/v.csv", Body=b"newer\n")

    # When the failed run is quarantined
    result = quarantine(
        _failed("incoming/v.csv", "DelimiterError", "{}", version_id=failed_version),
        processed_bucket=PROCESSED,
        client=s3,
        now=NOW,
    )

    # Then the quarantined bytes are the failed version's
    assert result.location is not None
    key = result.location.split(f"s3://{PROCESSED}/", 1)[1]
    assert s3.get_object(Bucket=PROCESSED, Key=key)["Body"].read() == BODY
