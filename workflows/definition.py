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
READ_INPUT = "ReadInput"
VALIDATE = "ValidateOrders"
TRANSFORM = "TransformOrders"
STORE = "PublishBatch"
MERGE_STATE = "MergeState"
CATALOG = "CatalogBatch"
CLEAN_UP = "CleanUp"
CLEAN_UP_FAILED = "CleanUpFailed"
SUCCEEDED = "BatchSucceeded"
QUARANTINE = "QuarantineInput"
QUARANTINE_FAILED = "QuarantineFailed"
NOTIFY = "NotifyFailure"
NOTIFY_STATE = "NotifyStateFailure"
FAILED = "BatchFailed"
# Steps after the batch pointer is written: a failure there is not the input's fault, so the
# input is not quarantined (the batch is published; a retry of the execution catches up).
STATE_STEPS: tuple[str, ...] = (MERGE_STATE, CATALOG)
# The execution input's optional fields and their values when absent: an upload's own run
# has no hand re-run time, and S3 may omit the sequencer (start_etl passes it when it has it).
INPUT_DEFAULTS: dict[str, str] = {"sequencer": "", "rerun_at": ""}

# Errors worth retrying: the service was busy or briefly unavailable, not the input.
LAMBDA_TRANSIENT_ERRORS: tuple[str, ...] = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# A step that ran out of time (the function's timeout, or the task's): every Lambda step
# is idempotent, so one that may have finished its work is run again rather than taken
# for a bad file.
TIMEOUT_ERRORS: tuple[str, ...] = ("Sandbox.Timedout", "States.Timeout")
GLUE_TRANSIENT_ERRORS: tuple[str, ...] = (
    "Glue.ConcurrentRunsExceededException",
    "Glue.ThrottlingException",
)
# A failed state job run: its merge lost the publication to other merges more times than
# it tries (it starts again on each newer publication itself), or it failed transiently.
# A merge is idempotent, so the run is retried once more, later, at a random moment.
GLUE_JOB_FAILED = "States.TaskFailed"
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
    clean_up_function_arn: str
    quarantine_function_arn: str
    glue_job_name: str
    state_job_name: str
    processed_bucket: str
    database: str
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
            "clean_up_function_arn",
            "quarantine_function_arn",
            "failure_topic_arn",
        ):
            value = getattr(self, field_name)
            if not _ARN.match(value):
                problems.append(f"{field_name} {value!r} is not an ARN")
        if not self.glue_job_name or not self.state_job_name:
            problems.append("glue_job_name and state_job_name must not be empty")
        if not self.database:
            problems.append("database must not be empty")
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
            clean_up_function_arn=function_arn("clean_up"),
            quarantine_function_arn=function_arn("quarantine_batch"),
            glue_job_name="duffbeer-transform-orders",
            state_job_name="duffbeer-maintain-state",
            processed_bucket=naming.DEFAULT_PROCESSED_BUCKET,
            database=naming.DATABASE,
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


class _JitteredRetry(Retry):
    """Retry plus JitterStrategy FULL (absent in SDK 2.3.0): each wait is a random part of
    the backoff, so executions that failed together do not retry together."""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = super().to_dict()
        result["JitterStrategy"] = "FULL"
        return result


def _retry(errors: tuple[str, ...], interval: int, attempts: int) -> Any:
    return Retry(
        error_equals=list(errors),
        interval_seconds=interval,
        max_attempts=attempts,
        backoff_rate=2.0,
    )


def _lambda_retry() -> list[Any]:
    return [
        _retry(LAMBDA_TRANSIENT_ERRORS, interval=2, attempts=6),
        _retry(TIMEOUT_ERRORS, interval=5, attempts=2),
    ]


def glue_arguments(config: WorkflowConfig) -> dict[str, str]:
    """The Glue job's arguments as ASL Parameters: every value resolves to a string.

    The job reads the run's own copy of the upload that ValidateOrders made from the exact
    version and ETag the event announced; the original object is recorded as its source.
    """
    staged = f"States.Format('s3://{config.processed_bucket}/{{}}', $.validation.staged_input)"
    return {
        "--input_path.$": staged,
        "--source_uri.$": "States.Format('s3://{}/{}', $.bucket, $.key)",
        "--source_version_id.$": "$.validation.source_version_id",
        "--output_path": f"s3://{config.processed_bucket}/",
        "--batch_id.$": "$.batch_id",
        "--run_id.$": _RUN_ID,
        "--ingest_date.$": "$.validation.ingest_date",
        "--source_event_time.$": "$.event_time",
        "--source_etag.$": "$.etag",
        "--source_sequencer.$": "$.sequencer",
        "--rerun_at.$": "$.rerun_at",
        "--max_reject_ratio": repr(float(config.max_reject_ratio)),
    }


def state_job_arguments(config: WorkflowConfig) -> dict[str, str]:
    """The MergeState job's arguments: where the batch pointers and the state live, the
    batch to merge and the execution merging it."""
    return {
        "--processed_path": f"s3://{config.processed_bucket}/",
        "--database": config.database,
        "--batch_id.$": "$.batch_id",
        "--run_id.$": _RUN_ID,
    }


_ON_ERROR = "$.error"


def _lambda_task(
    config: WorkflowConfig,
    name: str,
    *,
    comment: str,
    function_arn: str,
    outputs: tuple[str, ...],
    result_path: str,
    payload: dict[str, str] | None = None,
) -> Any:
    """A Lambda step that takes the batch and run ids (plus `payload`), retries transient
    Lambda errors and keeps only `outputs` of the function's result."""
    return _SelectingLambdaStep(
        name,
        comment=comment,
        parameters={
            "FunctionName": function_arn,
            "Payload": {"batch_id.$": "$.batch_id", "run_id.$": _RUN_ID, **(payload or {})},
        },
        result_selector={f"{field}.$": f"$.Payload.{field}" for field in outputs},
        result_path=result_path,
        timeout_seconds=config.lambda_timeout_seconds,
        retry=_lambda_retry(),
    )


def _catch_all(next_step: Any) -> Any:
    return Catch(next_step=next_step, error_equals=["States.ALL"], result_path=_ON_ERROR)


def _notification(
    config: WorkflowConfig, name: str, *, comment: str, subject: str, extra: dict[str, str]
) -> Any:
    """An SNS message to operators about the failed step ($.error) of this execution."""
    return SnsPublishStep(
        name,
        comment=comment,
        parameters={
            "TopicArn": config.failure_topic_arn,
            "Subject": subject,
            "Message": {
                "batch_id.$": "$.batch_id",
                "execution.$": _RUN_ID,
                "execution_arn.$": "$$.Execution.Id",
                "bucket.$": "$.bucket",
                "key.$": "$.key",
                "error.$": f"{_ON_ERROR}.Error",
                "cause.$": f"{_ON_ERROR}.Cause",
                **extra,
            },
        },
        result_path=None,
        retry=_retry(SNS_TRANSIENT_ERRORS, interval=2, attempts=4),
    )


def _failure_paths(config: WorkflowConfig) -> tuple[Any, Any]:
    """The two ways into BatchFailed: before the batch is published (quarantine the input,
    notify) and after it (notify only: the input is fine, a retry catches up)."""
    failed = _FailFromPaths(
        FAILED,
        error_path=f"{_ON_ERROR}.Error",
        cause_path=f"{_ON_ERROR}.Cause",
        comment="Ends the execution with the error and cause of the step that failed.",
    )
    notify = _notification(
        config,
        NOTIFY,
        comment="Tells operators which batch failed, why, and where its input was quarantined.",
        subject="Duff Beer orders: batch failed",
        extra={
            "quarantine_location.$": "$.quarantine.location",
            "error_report.$": "$.quarantine.report",
        },
    )
    notify_state = _notification(
        config,
        NOTIFY_STATE,
        comment="A step failed for a reason that is not the input's (it timed out, or the "
        "batch is published and the reports did not catch up): notify, no quarantine.",
        subject="Duff Beer orders: reports not updated",
        extra={
            "action": "The input was not quarantined: the step failed for a reason that is "
            "not the file's (the batch may already be published); re-run the execution to "
            "complete it and update the reports."
        },
    )
    for notice in (notify, notify_state):
        # Without the notification the Fail state still ends the run with the original
        # error: the failed-executions alarm is the second line of alerting.
        notice.add_catch(Catch(next_step=failed, error_equals=["States.ALL"], result_path=None))
        notice.next(failed)

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
                "rerun_at.$": "$.rerun_at",
                "error.$": f"{_ON_ERROR}.Error",
                "cause.$": f"{_ON_ERROR}.Cause",
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
    return quarantine, notify_state


def _timed_out(notify_state: Any) -> Any:
    """A step that still timed out after its retries: not the input's fault, and the step
    may have done its work (PublishBatch after its conditional write): notify, never
    quarantine."""
    return Catch(next_step=notify_state, error_equals=list(TIMEOUT_ERRORS), result_path=_ON_ERROR)


def _batch_steps(config: WorkflowConfig, quarantine: Any, notify_state: Any) -> list[Any]:
    """ReadInput -> Validate -> Transform -> Store: a failure here quarantines the input,
    unless the step timed out."""
    defaults = json.dumps(INPUT_DEFAULTS).replace("'", "\\'")
    read_input = Pass(
        READ_INPUT,
        comment="The execution input with its optional fields filled in (sequencer, rerun_at).",
        parameters={"input.$": f"States.JsonMerge(States.StringToJson('{defaults}'), $, false)"},
        output_path="$.input",
    )
    validate = _SelectingLambdaStep(
        VALIDATE,
        comment="File-level checks of the contract on the header and a bounded sample of the "
        "announced upload, then the run's own copy of it.",
        parameters={
            "FunctionName": config.validate_function_arn,
            "Payload": {
                "batch_id.$": "$.batch_id",
                "run_id.$": _RUN_ID,
                "bucket.$": "$.bucket",
                "key.$": "$.key",
                "version_id.$": "$.version_id",
                "etag.$": "$.etag",
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
            "staged_input.$": "$.Payload.staged_input",
            "source_version_id.$": "$.Payload.source_version_id",
        },
        result_path="$.validation",
        timeout_seconds=config.lambda_timeout_seconds,
        retry=_lambda_retry(),
        catch=[_timed_out(notify_state), _catch_all(quarantine)],
    )
    transform = _SelectingGlueStep(
        TRANSFORM,
        comment="Runs the Glue job and waits for it; the job writes the run's outputs.",
        wait_for_completion=True,
        parameters={"JobName": config.glue_job_name, "Arguments": glue_arguments(config)},
        result_selector={"job_run_id.$": "$.Id", "state.$": "$.JobRunState"},
        result_path="$.transform",
        timeout_seconds=config.glue_timeout_seconds,
        retry=[
            _retry(GLUE_TRANSIENT_ERRORS, interval=60, attempts=5),
            # A run that ran out of time writes only its own run's prefix: run it once more.
            _retry(("States.Timeout",), interval=60, attempts=1),
        ],
        catch=[_timed_out(notify_state), _catch_all(quarantine)],
    )
    store = _lambda_task(
        config,
        STORE,
        comment="Publishes the run: a conditional write of the batch pointer (never an older "
        "upload).",
        function_arn=config.publish_function_arn,
        outputs=(
            "outcome",
            "published_run_id",
            "rows_read",
            "rows_valid",
            "rows_rejected",
            "partitions",
        ),
        result_path="$.store",
    )
    store.add_catch(_timed_out(notify_state))
    store.add_catch(_catch_all(quarantine))
    return [read_input, validate, transform, store]


def _merge_state(config: WorkflowConfig, notify_state: Any) -> Any:
    """MergeState: the state job merges the batch's published run into the Iceberg tables
    and publishes them in one commit; merges of other executions may run at the same time."""
    merge = _SelectingGlueStep(
        MERGE_STATE,
        comment="Runs the state job and waits: it merges the batch's published run into the "
        "current state and publishes it (one Iceberg commit).",
        wait_for_completion=True,
        parameters={"JobName": config.state_job_name, "Arguments": state_job_arguments(config)},
        result_selector={"job_run_id.$": "$.Id", "state.$": "$.JobRunState"},
        result_path="$.merge",
        timeout_seconds=config.glue_timeout_seconds,
        retry=[
            _retry(GLUE_TRANSIENT_ERRORS, interval=30, attempts=5),
            _JitteredRetry(
                error_equals=[GLUE_JOB_FAILED],
                interval_seconds=30,
                max_attempts=2,
                backoff_rate=2.0,
            ),
        ],
    )
    merge.add_catch(_catch_all(notify_state))
    return merge


def build_states(config: WorkflowConfig) -> Any:
    """The state graph: ReadInput -> Validate -> Transform -> Store -> MergeState ->
    Catalog -> CleanUp, with a failure path before the batch is published (quarantine,
    notify, fail) and one after it (notify, fail)."""
    quarantine, notify_state = _failure_paths(config)
    catalog = _lambda_task(
        config,
        CATALOG,
        comment="Points the batch's partitions at its published run.",
        function_arn=config.catalog_function_arn,
        outputs=("partitions_created", "partitions_updated", "partitions_deleted"),
        result_path="$.catalog",
    )
    catalog.add_catch(_catch_all(notify_state))
    succeeded = Succeed(SUCCEEDED, comment="The batch is published and the reports show it.")
    clean_up_failed = Pass(
        CLEAN_UP_FAILED,
        comment="Leftovers are invisible to readers; the CleanupErrors alarm and the next run "
        "take care of them.",
        result_path=None,
    )
    clean_up_failed.next(succeeded)
    clean_up = _lambda_task(
        config,
        CLEAN_UP,
        comment="Deletes the batch's superseded runs once readers cannot need them any more.",
        function_arn=config.clean_up_function_arn,
        outputs=("deleted_runs", "errors"),
        result_path="$.clean_up",
    )
    clean_up.add_catch(
        Catch(next_step=clean_up_failed, error_equals=["States.ALL"], result_path="$.clean_up")
    )
    catalog.next(clean_up)
    clean_up.next(succeeded)
    merge = _merge_state(config, notify_state)
    merge.next(catalog)
    return Chain([*_batch_steps(config, quarantine, notify_state), merge])


_COMMENT = (
    "Duff Beer orders: validate, transform (Glue), publish the batch, merge it into the "
    "current state's Iceberg tables (Glue), catalog, clean up"
)


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
