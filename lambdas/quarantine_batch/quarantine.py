"""Copy a failed run's input to quarantine/<batch_id>/<run_id>/ with a machine-readable report.

The copy goes to the PROCESSED bucket, so the input bucket's ObjectCreated notification can
never fire for it; the original stays where it was uploaded (a corrected re-upload of the
same key replaces the batch), and the run is recorded in the run index GET /batches reads
(duffbeer.history, tagged to expire with the report). The report names the error the way
the state machine caught it (`error`, e.g. `MissingColumnsError` or `States.TaskFailed`)
and, where the cause allows, the project exception behind it (`reason`) with its message.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import BeforeValidator

from duffbeer import errors, history, naming
from duffbeer.steps import InputEvent, Payload
from duffbeer.telemetry import Measure

logger = Logger(child=True)

REPORT_VERSION = 1
_ERROR_CLASS = re.compile(r"\b([A-Z][A-Za-z]+Error)\b")


class FailedRun(InputEvent):
    """What the state machine knows about the failure (its Catch output and the input)."""

    # The Catch's Error and Cause; either may be null.
    error: Annotated[str, BeforeValidator(lambda value: value or "Unknown")] = "Unknown"
    cause: Annotated[str, BeforeValidator(lambda value: value or "")] = ""
    # Set when the run was started by hand (the execution input's optional field).
    rerun_at: Annotated[str, BeforeValidator(lambda value: value or "")] = ""


class QuarantineResult(Payload):
    location: str | None  # s3:// URI of the copy; None when the input could not be copied
    report: str  # s3:// URI of error.json
    reason: str

    def measures(self) -> list[Measure]:
        return [Measure("QuarantinedFiles", 1)]


def _project_error(name: str) -> bool:
    candidate = getattr(errors, name, None)
    return isinstance(candidate, type) and issubclass(candidate, errors.DuffBeerError)


def explain(error: str, cause: str) -> tuple[str, str]:
    """(reason, message) from a Catch's Error and Cause.

    A Lambda error's cause is its JSON error payload (errorType, errorMessage); a Glue job
    failure is `States.TaskFailed` with the JobRun as cause, whose ErrorMessage carries the
    job's exception (`RejectThresholdExceededError: ...`). Anything else is kept as given.
    """
    try:
        payload = json.loads(cause)
    except (TypeError, ValueError):
        payload = None
    if isinstance(payload, dict):
        if "errorType" in payload:
            return str(payload["errorType"]), str(payload.get("errorMessage", ""))
        if "ErrorMessage" in payload:
            message = str(payload["ErrorMessage"])
            found = [name for name in _ERROR_CLASS.findall(message) if _project_error(name)]
            return (found[0] if found else error), message
    return error, cause or ""


def _file_name(key: str) -> str:
    name = key.rsplit("/", 1)[-1] or "input"
    # Never let an input named like the report overwrite it.
    return f"input-{name}" if name == naming.ERROR_REPORT_FILE else name


def _run_time(failed: FailedRun, now: datetime) -> datetime:
    """The run's place in the history; now if the input carries no readable time (the file
    is quarantined all the same)."""
    try:
        return history.run_time(failed.event_time, failed.rerun_at)
    except ValueError:
        return now


def quarantine(
    failed: FailedRun, *, processed_bucket: str, client: Any, now: datetime
) -> QuarantineResult:
    """Copy the input (if it still exists) and write error.json next to it."""
    prefix = naming.quarantine_prefix(failed.batch_id, failed.run_id)
    copy_key = f"{prefix}{_file_name(failed.key)}"
    report_key = f"{prefix}{naming.ERROR_REPORT_FILE}"
    source: dict[str, str] = {"Bucket": failed.bucket, "Key": failed.key}
    if failed.version_id:
        source["VersionId"] = failed.version_id

    copy_error: str | None = None
    try:
        # The managed copy switches to multipart above 5 GB, the single-request limit.
        client.copy(source, processed_bucket, copy_key)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code not in ("NoSuchKey", "404", "NoSuchVersion"):
            raise
        copy_error = f"the input object no longer exists ({code})"
        logger.warning("Input object is gone; writing the report only", extra={"code": code})

    reason, message = explain(failed.error, failed.cause)
    location = None if copy_error else f"s3://{processed_bucket}/{copy_key}"
    report = {
        "report_version": REPORT_VERSION,
        "batch_id": failed.batch_id,
        "run_id": failed.run_id,
        "error": failed.error,
        "reason": reason,
        "message": message,
        "cause": failed.cause,
        "source": {
            "bucket": failed.bucket,
            "key": failed.key,
            "version_id": failed.version_id,
            "event_time": failed.event_time,
            "uri": f"s3://{failed.bucket}/{failed.key}",
        },
        "quarantined_object": location,
        "copy_error": copy_error,
        "quarantined_at": now.isoformat(),
    }
    client.put_object(
        Bucket=processed_bucket,
        Key=report_key,
        Body=json.dumps(report, indent=2, sort_keys=True).encode("utf-8"),
        ContentType="application/json",
    )
    history.record(
        client,
        processed_bucket,
        batch_id=failed.batch_id,
        run_id=failed.run_id,
        at=_run_time(failed, now),
        outcome="quarantined",
        quarantined=True,
    )
    return QuarantineResult(
        location=location, report=f"s3://{processed_bucket}/{report_key}", reason=reason
    )
