"""The orders ETL state machine, built as data with the Step Functions Data Science SDK."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from duffbeer import aws, contract, naming
from duffbeer.errors import ConfigurationError
from workflows._sdk import (
    Catch,
    Chain,
    Fail,
    GlueStartJobRunStep,
    Graph,
    LambdaStep,
    Pass,
    Retry,
    SnsPublishStep,
    Succeed,
    Workflow,
)

# State names are part of the interface: alarms, dashboards and tests refer to them.
VALIDATE = "ValidateOrders"
TRANSFORM = "TransformOrders"
STORE = "PublishBatch"
CATALOG = "CatalogBatch"
SUCCEEDED = "BatchSucceeded"
QUARANTINE = "QuarantineInput"
QUARANTINE_FAILED = "QuarantineFailed"
NOTIFY = "NotifyFailure"
FAILED = "BatchFailed"

# Errors worth retrying: the service was busy or briefly unavailable, not the input.
LAMBDA_TRANSIENT_ERRORS: tuple[str, ...] = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
GLUE_TRANSIENT_ERRORS: tuple[str, ...] = (
    "Glue.ConcurrentRunsExceededException",
    "Glue.ThrottlingException",
)
SNS_TRANSIENT_ERRORS: tuple[str, ...] = (
    "SNS.ThrottledException",
    "SNS.InternalErrorException",
)

_STATE_MACHINE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$")

# The run id of every step is the execution name (see docs/architecture.md).
_RUN_ID = "$$.Execution.Name"


@dataclass(frozen=True)
class WorkflowConfig:
    """Everything the definition depends on; deploy builds it from the resources it created."""

    state_machine_name: str
    role_arn: str
    validate_function_arn: str
    publish_function_arn: str
    catalog_function_arn: str
    quarantine_function_arn: str
    glue_job_name: str
    processed_bucket: str
    failure_topic_arn: str
    max_reject_ratio: float = contract.DEFAULT_MAX_REJECT_RATIO
    glue_timeout_seconds: int = 2 * 3600
    lambda_timeout_seconds: int = 300
    execution_timeout_seconds: int = 3 * 3600
    region: str | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _STATE_MACHINE_NAME.match(self.state_machine_name):
            problems.append(f"state_machine_name {self.state_machine_name!r} is not a valid name")
        for field_name in (
            "role_arn",
            "validate_function_arn",
            "publish_function_arn",
            "catalog_function_arn",
            "quarantine_function_arn",
            "failure_topic_arn",
        ):
            value = getattr(self, field_name)
            if not _ARN.match(value):
                problems.append(f"{field_name} {value!r} is not an ARN")
        if not self.glue_job_name:
            problems.append("glue_job_name is empty")
        if not self.processed_bucket or "/" in self.processed_bucket:
            problems.append(f"processed_bucket {self.processed_bucket!r} is not a bucket name")
        if not 0 <= self.max_reject_ratio <= 1:
            problems.append(f"max_reject_ratio {self.max_reject_ratio} is not within [0, 1]")
        timeouts = (
            self.glue_timeout_seconds,
            self.lambda_timeout_seconds,
            self.execution_timeout_seconds,
        )
        if min(timeouts) <= 0:
            problems.append("timeouts must be positive")
        if self.execution_timeout_seconds <= self.glue_timeout_seconds:
            problems.append("execution_timeout_seconds must exceed glue_timeout_seconds")
        if problems:
            raise ConfigurationError("invalid WorkflowConfig: " + "; ".join(problems))

    @classmethod
    def example(cls, account: str = "123456789012", region: str = "us-east-1") -> WorkflowConfig:
        """The default names in one account/region: used by export.py and the docs."""

        def function_arn(name: str) -> str:
            return f"arn:aws:lambda:{region}:{account}:function:duffbeer-{name}"

        return cls(
            state_machine_name="duffbeer-orders-etl",
            role_arn=f"arn:aws:iam::{account}:role/duffbeer-orders-etl-states",
            validate_function_arn=function_arn("validate_orders"),
            publish_function_arn=function_arn("publish_batch"),
            catalog_function_arn=function_arn("catalog_batch"),
            quarantine_function_arn=function_arn("quarantine_batch"),
            glue_job_name="duffbeer-transform-orders",
            processed_bucket=naming.DEFAULT_PROCESSED_BUCKET,
            failure_topic_arn=f"arn:aws:sns:{region}:{account}:duffbeer-orders-alerts",
            region=region,
        )


class _SelectingLambdaStep(LambdaStep):
    """LambdaStep plus ResultSelector, which SDK 2.3.0 does not model."""

    def __init__(self, state_id: str, *, result_selector: dict[str, str], **kwargs: Any) -> None:
        super().__init__(state_id, **kwargs)
        self._result_selector = result_selector

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = super().to_dict()
        result["ResultSelector"] = self._result_selector
        return result


class _SelectingGlueStep(GlueStartJobRunStep):
    """GlueStartJobRunStep plus ResultSelector (the raw JobRun holds datetimes)."""

    def __init__(self, state_id: str, *, result_selector: dict[str, str], **kwargs: Any) -> None:
        super().__init__(state_id, **kwargs)
        self._result_selector = result_selector

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = super().to_dict()
        result["ResultSelector"] = self._result_selector
        return result


class _FailFromPaths(Fail):
    """A Fail state that re-raises the caught error: ErrorPath/CausePath, absent in SDK 2.3.0."""

    def __init__(self, state_id: str, *, error_path: str, cause_path: str, comment: str) -> None:
        super().__init__(state_id, comment=comment)
        self._error_path = error_path
        self._cause_path = cause_path

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = super().to_dict()
        result["ErrorPath"] = self._error_path
        result["CausePath"] = self._cause_path
        return result


def _retry(errors: tuple[str, ...], interval: int, attempts: int) -> Any:
    return Retry(
        error_equals=list(errors),
        interval_seconds=interval,
        max_attempts=attempts,
        backoff_rate=2.0,
    )


def _lambda_retry() -> Any:
    return _retry(LAMBDA_TRANSIENT_ERRORS, interval=2, attempts=6)


def glue_arguments(config: WorkflowConfig) -> dict[str, str]:
    """The Glue job's arguments as ASL Parameters: every value resolves to a string.

    The version id is not passed: it is null on unversioned buckets and Glue arguments must
    be strings; the ETag identifies the object the job reads and lands in the manifest.
    """
    return {
        "--input_path.$": "States.Format('s3://{}/{}', $.bucket, $.key)",
        "--output_path": f"s3://{config.processed_bucket}/",
        "--batch_id.$": "$.batch_id",
        "--run_id.$": _RUN_ID,
        "--ingest_date.$": "$.validation.ingest_date",
        "--source_event_time.$": "$.event_time",
        "--source_etag.$": "$.etag",
        "--max_reject_ratio": repr(float(config.max_reject_ratio)),
    }


def build_states(config: WorkflowConfig) -> Any:
    """The state graph: Validate -> Transform -> Store -> Catalog, one failure path."""
    on_error = "$.error"
    failed = _FailFromPaths(
        FAILED,
        error_path=f"{on_error}.Error",
        cause_path=f"{on_error}.Cause",
        comment="Ends the execution with the error and cause of the step that failed.",
    )
    notify = SnsPublishStep(
        NOTIFY,
        comment="Tells operators which batch failed, why, and where its input was quarantined.",
        parameters={
            "TopicArn": config.failure_topic_arn,
            "Subject": "Duff Beer orders: batch failed",
            "Message": {
                "batch_id.$": "$.batch_id",
                "execution.$": _RUN_ID,
                "execution_arn.$": "$$.Execution.Id",
                "bucket.$": "$.bucket",
                "key.$": "$.key",
                "error.$": f"{on_error}.Error",
                "cause.$": f"{on_error}.Cause",
                "quarantine_location.$": "$.quarantine.location",
                "error_report.$": "$.quarantine.report",
            },
        },
        result_path=None,
        retry=_retry(SNS_TRANSIENT_ERRORS, interval=2, attempts=4),
    )
    # Without the notification the Fail state still ends the run with the original error:
    # the failed-executions alarm is the second line of alerting.
    notify.add_catch(Catch(next_step=failed, error_equals=["States.ALL"], result_path=None))
    notify.next(failed)

    quarantine_failed = Pass(
        QUARANTINE_FAILED,
        comment="The input could not be quarantined; notify anyway (the input object is kept).",
        result={"location": None, "report": None},
        result_path="$.quarantine",
    )
    quarantine_failed.next(notify)
    quarantine = _SelectingLambdaStep(
        QUARANTINE,
        comment="Copies the input to quarantine/ in the processed bucket with an error report.",
        parameters={
            "FunctionName": config.quarantine_function_arn,
            "Payload": {
                "batch_id.$": "$.batch_id",
                "run_id.$": _RUN_ID,
                "bucket.$": "$.bucket",
                "key.$": "$.key",
                "version_id.$": "$.version_id",
                "event_time.$": "$.event_time",
                "error.$": f"{on_error}.Error",
                "cause.$": f"{on_error}.Cause",
            },
        },
        result_selector={"location.$": "$.Payload.location", "report.$": "$.Payload.report"},
        result_path="$.quarantine",
        timeout_seconds=config.lambda_timeout_seconds,
        retry=_lambda_retry(),
    )
    quarantine.add_catch(
        Catch(
            next_step=quarantine_failed,
            error_equals=["States.ALL"],
            result_path="$.quarantine_error",
        )
    )
    quarantine.next(notify)

    def catch_all() -> Any:
        return Catch(next_step=quarantine, error_equals=["States.ALL"], result_path=on_error)

    validate = _SelectingLambdaStep(
        VALIDATE,
        comment="File-level checks of the contract on the header and a bounded sample.",
        parameters={
            "FunctionName": config.validate_function_arn,
            "Payload": {
                "batch_id.$": "$.batch_id",
                "run_id.$": _RUN_ID,
                "bucket.$": "$.bucket",
                "key.$": "$.key",
                "version_id.$": "$.version_id",
                "event_time.$": "$.event_time",
            },
        },
        result_selector={
            "size.$": "$.Payload.size",
            "encoding.$": "$.Payload.encoding",
            "bom.$": "$.Payload.bom",
            "columns.$": "$.Payload.columns",
            "extra_columns.$": "$.Payload.extra_columns",
            "ingest_date.$": "$.Payload.ingest_date",
        },
        result_path="$.validation",
        timeout_seconds=config.lambda_timeout_seconds,
        retry=_lambda_retry(),
        catch=catch_all(),
    )
    transform = _SelectingGlueStep(
        TRANSFORM,
        comment="Runs the Glue job and waits for it; the job publishes the batch manifest last.",
        wait_for_completion=True,
        parameters={"JobName": config.glue_job_name, "Arguments": glue_arguments(config)},
        result_selector={"job_run_id.$": "$.Id", "state.$": "$.JobRunState"},
        result_path="$.transform",
        timeout_seconds=config.glue_timeout_seconds,
        retry=_retry(GLUE_TRANSIENT_ERRORS, interval=60, attempts=5),
        catch=catch_all(),
    )
    def batch_step(
        name: str, comment: str, function_arn: str, outputs: tuple[str, ...], result_path: str
    ) -> Any:
        """A Lambda step that takes the batch and run ids and keeps only `outputs`."""
        return _SelectingLambdaStep(
            name,
            comment=comment,
            parameters={
                "FunctionName": function_arn,
                "Payload": {"batch_id.$": "$.batch_id", "run_id.$": _RUN_ID},
            },
            result_selector={f"{field}.$": f"$.Payload.{field}" for field in outputs},
            result_path=result_path,
            timeout_seconds=config.lambda_timeout_seconds,
            retry=_lambda_retry(),
            catch=catch_all(),
        )

    store = batch_step(
        STORE,
        "Verifies the published manifest names this run; removes superseded runs.",
        config.publish_function_arn,
        ("rows_read", "rows_valid", "rows_rejected", "partitions", "deleted_objects"),
        "$.store",
    )
    catalog = batch_step(
        CATALOG,
        "Points the batch's Glue partitions at the published run; ensures tables/views.",
        config.catalog_function_arn,
        ("partitions_created", "partitions_updated", "partitions_deleted"),
        "$.catalog",
    )
    succeeded = Succeed(SUCCEEDED, comment="The batch is published and cataloged.")
    return Chain([validate, transform, store, catalog, succeeded])


_COMMENT = "Duff Beer orders: validate, transform (Glue), publish, catalog; failures quarantined"


def build_definition(config: WorkflowConfig, *, client: Any = None) -> Any:
    """The SDK Workflow for `config`. Makes no AWS call; `client` is the boto3 Step Functions
    client the Workflow object keeps for create/update (built lazily from config.region)."""
    if client is None:
        client = aws.client("stepfunctions", config.region)
    return Workflow(
        name=config.state_machine_name,
        definition=build_states(config),
        role=config.role_arn,
        tags=[{"key": "project", "value": naming.PROJECT_TAG}],
        timeout_seconds=config.execution_timeout_seconds,
        comment=_COMMENT,
        client=client,
    )


def definition_dict(config: WorkflowConfig) -> dict[str, Any]:
    """The ASL document as a dict (no client, no AWS call)."""
    graph = Graph(
        build_states(config),
        timeout_seconds=config.execution_timeout_seconds,
        comment=_COMMENT,
    )
    result: dict[str, Any] = graph.to_dict()
    return result


def definition_json(config: WorkflowConfig) -> str:
    """The ASL document as the JSON text given to CreateStateMachine/UpdateStateMachine."""
    return json.dumps(definition_dict(config), indent=2)
