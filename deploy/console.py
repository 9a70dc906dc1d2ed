"""Execution name and input for starting a run by hand (console or CLI) on an uploaded object."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deploy.core import Clients, aws_errors
from duffbeer import naming, utc


def execution_request(
    bucket: str, key: str, head: dict[str, Any], now: datetime
) -> tuple[str, dict[str, Any]]:
    """The name and input start_etl would use for this object, as a manual delivery.

    The sequencer is the time of the manual start, so starting the same object again later is
    a new run, while the batch id (from bucket and key) stays that of the object's batch.
    """
    etag = str(head["ETag"]).strip('"')
    version_id = head.get("VersionId") or None
    sequencer = f"manual-{now.strftime('%Y%m%dT%H%M%S')}"
    batch_id = naming.batch_id_for(bucket, key)
    identity = version_id or f"{etag}:{sequencer}"
    document = {
        "bucket": bucket,
        "key": key,
        "etag": etag,
        "version_id": version_id,
        "size": int(head["ContentLength"]),
        "event_time": utc.iso(now),
        "batch_id": batch_id,
        "sequencer": sequencer,
    }
    return naming.execution_name_for(batch_id, identity), document


def head_object(clients: Clients, bucket: str, key: str) -> dict[str, Any]:
    with aws_errors(f"s3://{bucket}/{key}"):
        return dict(clients.s3.head_object(Bucket=bucket, Key=key))
