"""Turn S3 ObjectCreated records into workflow executions: filter, name, start, deduplicate."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from duffbeer import naming
from duffbeer.errors import ExecutionStartError
from duffbeer.steps import Payload, parse_event
from duffbeer.telemetry import Measure

logger = Logger(child=True)


class SkipReason(StrEnum):
    NOT_OBJECT_CREATED = "not_object_created"
    FOLDER_MARKER = "folder_marker"
    PIPELINE_PREFIX = "pipeline_prefix"


class S3ObjectRef(BaseModel):
    """The object of an S3 notification record; its key arrives URL-encoded."""

    key: Annotated[str, AfterValidator(unquote_plus)]
    size: Annotated[int, BeforeValidator(lambda value: value or 0)] = 0
    eTag: Annotated[str, BeforeValidator(lambda value: value or "")] = ""
    versionId: str | None = None
    sequencer: Annotated[str, BeforeValidator(lambda value: value or "")] = ""


class S3BucketRef(BaseModel):
    name: str


class S3Entity(BaseModel):
    bucket: S3BucketRef
    object: S3ObjectRef


class S3Record(BaseModel):
    eventName: str
    # Kept as S3 wrote it: it goes into the execution input as is.
    eventTime: str
    s3: S3Entity


class S3Notification(BaseModel):
    """The fields of an S3 event notification the trigger uses.

    Not Powertools' S3Model: that one requires fields this trigger never reads (request
    parameters, response elements, owner identity), parses the event time into a datetime,
    and keeps keys URL-encoded. S3's `s3:TestEvent` has no Records.
    """

    Records: list[S3Record] = Field(default_factory=list)


class InputObject(Payload):
    """One created object, as the S3 event describes it (key already unquoted)."""

    bucket: str
    key: str
    etag: str
    version_id: str | None
    size: int
    event_time: str
    sequencer: str
    event_name: str

    @property
    def batch_id(self) -> str:
        return naming.batch_id_for(self.bucket, self.key)

    @property
    def execution_name(self) -> str:
        # The version id names one object version; without versioning, the ETag plus the
        # sequencer name one PUT (the same bytes uploaded twice are two runs).
        identity = self.version_id or f"{self.etag}:{self.sequencer}"
        return naming.execution_name_for(self.batch_id, identity)

    def execution_input(self) -> dict[str, Any]:
        """The state machine's input (docs/architecture.md, "The state machine's input")."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "version_id": self.version_id,
            "size": self.size,
            "event_time": self.event_time,
            "batch_id": self.batch_id,
            "sequencer": self.sequencer,
        }


class TriggerSummary(Payload):
    """What one invocation did with each record (the handler turns it into metrics)."""

    # Filled in record by record.
    model_config = ConfigDict(frozen=False)

    started: list[str] = Field(default_factory=list)
    duplicates: list[str] = Field(default_factory=list)
    skipped: dict[str, SkipReason] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)

    def measures(self) -> list[Measure]:
        return [
            Measure("ExecutionsStarted", len(self.started)),
            Measure("DuplicateDeliveries", len(self.duplicates)),
            Measure("ObjectsIgnored", len(self.skipped)),
        ]


def input_objects(event: Any) -> list[InputObject]:
    """Every record of an S3 notification, in order; S3's `s3:TestEvent` has none."""
    notification = parse_event(event, S3Notification)
    return [
        InputObject(
            bucket=record.s3.bucket.name,
            key=record.s3.object.key,
            etag=record.s3.object.eTag,
            version_id=record.s3.object.versionId,
            size=record.s3.object.size,
            event_time=record.eventTime,
            sequencer=record.s3.object.sequencer,
            event_name=record.eventName,
        )
        for record in notification.Records
    ]


def skip_reason(obj: InputObject) -> SkipReason | None:
    """Why an object never starts a batch, or None when it should.

    Only events that are not uploads, folder markers and the pipeline's own prefixes are
    skipped. Any other object starts an execution, whatever its name or size: one that is not
    a `.csv` (any case) or is empty fails in ValidateOrders, which quarantines it with an
    error report and alerts, so no upload disappears with a log line only."""
    if not obj.event_name.startswith("ObjectCreated:"):
        return SkipReason.NOT_OBJECT_CREATED
    if obj.key.endswith("/"):
        return SkipReason.FOLDER_MARKER
    if naming.is_ignored_input_key(obj.key):
        return SkipReason.PIPELINE_PREFIX
    return None


def start_executions(
    objects: list[InputObject], *, state_machine_arn: str, client: Any
) -> TriggerSummary:
    """Start one execution per eligible object; attempt every record before failing.

    A duplicate delivery of the same event gets the same execution name, which Step
    Functions refuses to start twice (ExecutionAlreadyExists): that is logged, not an error.
    Any other failure is raised after the remaining records were tried, so that the Lambda
    retry re-delivers the event and the records already started are deduplicated by name.
    """
    summary = TriggerSummary()
    for obj in objects:
        where = f"s3://{obj.bucket}/{obj.key}"
        reason = skip_reason(obj)
        if reason is not None:
            summary.skipped[where] = reason
            logger.info(
                "Ignoring object", extra={"object": where, "reason": reason, "size": obj.size}
            )
            continue
        name = obj.execution_name
        # One invocation may carry several batches: the ids go on each line, not the logger.
        ids = {"batch_id": obj.batch_id, "execution_name": name, "object": where}
        try:
            client.start_execution(
                stateMachineArn=state_machine_arn,
                name=name,
                input=json.dumps(obj.execution_input()),
            )
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "ExecutionAlreadyExists":
                summary.duplicates.append(name)
                logger.info("Duplicate delivery: execution already exists", extra=ids)
            else:
                summary.failed[where] = f"{code}: {e}"
                logger.exception("Could not start the execution", extra=ids)
        else:
            summary.started.append(name)
            logger.info("Started execution", extra={**ids, "size": obj.size})
    if summary.failed:
        raise ExecutionStartError(
            f"could not start executions of {state_machine_arn} for "
            + "; ".join(f"{where} ({why})" for where, why in summary.failed.items())
        )
    return summary
