"""Execution name and input for re-running an uploaded object by hand (console or CLI)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deploy.core import Clients, aws_errors, get_or_none
from deploy.stack import StackArns, StackNames
from duffbeer import manifest, naming, utc


@dataclass(frozen=True)
class UploadOrder:
    """The ordering fields of the upload a re-run repeats, and where they were found."""

    event_time: str
    sequencer: str
    source: str


@dataclass(frozen=True)
class ExecutionRequest:
    name: str
    document: dict[str, Any]
    order: UploadOrder


def execution_request(
    bucket: str, key: str, head: dict[str, Any], order: UploadOrder, now: datetime
) -> ExecutionRequest:
    """The name and input of a hand-started run of the object `head` describes.

    The input carries the upload's own event time and sequencer plus `rerun_at` (now): the
    run orders after the upload's automatic run and any earlier re-run, and before a later
    upload of the key, so publishing it replaces the batch exactly as the upload did. The
    name is new on every call (a `manual-<UTC time>-<token>` part), never the automatic
    run's deterministic one.
    """
    batch_id = naming.batch_id_for(bucket, key)
    document = {
        "bucket": bucket,
        "key": key,
        "etag": str(head["ETag"]).strip('"'),
        "version_id": head.get("VersionId") or None,
        "size": int(head["ContentLength"]),
        "event_time": order.event_time,
        "batch_id": batch_id,
        "sequencer": order.sequencer,
        "rerun_at": utc.iso(now),
    }
    name = naming.manual_execution_name(batch_id, now, secrets.token_hex(2))
    return ExecutionRequest(name, document, order)


def upload_order(
    clients: Clients, names: StackNames, arns: StackArns, key: str, head: dict[str, Any]
) -> UploadOrder:
    """When the object was uploaded, as its automatic run saw it: that run's input (found by
    its deterministic name in a versioned bucket), else the batch pointer when it names this
    object, else the object's Last-Modified time (then the automatic run, if any, orders
    after the re-run: whichever publishes, the batch ends on the same bytes)."""
    batch_id = naming.batch_id_for(names.input_bucket, key)
    version_id = head.get("VersionId")
    if version_id:
        name = naming.execution_name_for(batch_id, version_id)
        with aws_errors(f"Step Functions execution {name}"):
            described = get_or_none(
                lambda: clients.stepfunctions.describe_execution(executionArn=arns.execution(name))
            )
        if described is not None:
            automatic = json.loads(described["input"])
            return UploadOrder(
                automatic["event_time"], automatic.get("sequencer") or "", f"execution {name}"
            )
    pointer_key = naming.manifest_key(batch_id)
    with aws_errors(f"s3://{names.processed_bucket}/{pointer_key}"):
        body = get_or_none(
            lambda: clients.s3.get_object(Bucket=names.processed_bucket, Key=pointer_key)
        )
    if body is not None:
        pointer = manifest.loads(body["Body"].read())
        source = pointer["source"]
        etag = str(head["ETag"]).strip('"')
        if source.get("etag") == etag and source.get("version_id") == (version_id or None):
            return UploadOrder(
                source["event_time"],
                source.get("sequencer") or "",
                f"s3://{names.processed_bucket}/{pointer_key}",
            )
    return UploadOrder(utc.iso(head["LastModified"]), "", "the object's Last-Modified")


def head_object(clients: Clients, bucket: str, key: str) -> dict[str, Any]:
    with aws_errors(f"s3://{bucket}/{key}"):
        return dict(clients.s3.head_object(Bucket=bucket, Key=key))
