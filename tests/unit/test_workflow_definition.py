"""The state machine compared as data: states, transitions, Retry/Catch, Glue arguments."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from duffbeer.errors import ConfigurationError
from workflows.definition import WorkflowConfig, build_definition, definition_dict, definition_json
from workflows.export import ASL_FILE, CLOUDFORMATION_FILE, export

REPO = Path(__file__).resolve().parents[2]
LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "QuarantineInput"}]
# After the batch pointer is written, a failure is not the input's fault: notify, no quarantine.
CATCH_STATE = [
    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyStateFailure"}
]


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return definition_dict(WorkflowConfig.example())


def _transitions(asl: dict[str, Any]) -> dict[str, list[str]]:
    """State -> every state it can move to (Next, then Catch targets)."""
    result = {}
    for name, state in asl["States"].items():
        targets = [state["Next"]] if "Next" in state else []
        targets += [catch["Next"] for catch in state.get("Catch", [])]
        result[name] = targets
    return result


def test_happy_path_and_failure_path_transitions(asl: dict[str, Any]) -> None:
    # Given the example configuration / When the definition is built
    # Then the states and every transition are exactly these
    assert asl["StartAt"] == "ReadInput"
    assert _transitions(asl) == {
        "ReadInput": ["ValidateOrders"],
        "ValidateOrders": ["TransformOrders", "NotifyStateFailure", "QuarantineInput"],
        "TransformOrders": ["PublishBatch", "NotifyStateFailure", "QuarantineInput"],
        "PublishBatch": ["MergeState", "NotifyStateFailure", "QuarantineInput"],
        "MergeState": ["CatalogBatch", "NotifyStateFailure"],
        "CatalogBatch": ["CleanUp", "NotifyStateFailure"],
        "CleanUp": ["BatchSucceeded", "CleanUpFailed"],
        "CleanUpFailed": ["BatchSucceeded"],
        "BatchSucceeded": [],
        "QuarantineInput": ["NotifyFailure", "QuarantineFailed"],
        "QuarantineFailed": ["NotifyFailure"],
        "NotifyFailure": ["BatchFailed", "BatchFailed"],
        "NotifyStateFailure": ["BatchFailed", "BatchFailed"],
        "BatchFailed": [],
    }
    assert {name: state["Type"] for name, state in asl["States"].items()} == {
        "ReadInput": "Pass",
        "ValidateOrders": "Task",
        "TransformOrders": "Task",
        "PublishBatch": "Task",
        "MergeState": "Task",
        "CatalogBatch": "Task",
        "CleanUp": "Task",
        "CleanUpFailed": "Pass",
        "BatchSucceeded": "Succeed",
        "QuarantineInput": "Task",
        "QuarantineFailed": "Pass",
        "NotifyFailure": "Task",
        "NotifyStateFailure": "Task",
        "BatchFailed": "Fail",
    }


def test_the_input_gets_its_optional_fields(asl: dict[str, Any]) -> None:
    # An upload's own run has no hand re-run time; an input from the console may lack both
    read_input = asl["States"]["ReadInput"]
    assert read_input["Parameters"] == {
        "input.$": (
            'States.JsonMerge(States.StringToJson(\'{"sequencer": "", "rerun_at": ""}\'), $, false)'
        )
    }
    assert read_input["OutputPath"] == "$.input"


def test_every_work_step_retries_transients_and_catches_the_rest(asl: dict[str, Any]) -> None:
    states = asl["States"]
    lambda_retry = [
        {
            "ErrorEquals": LAMBDA_TRANSIENT,
            "IntervalSeconds": 2,
            "MaxAttempts": 6,
            "BackoffRate": 2.0,
        },
        # A timed-out step may have done its work: every Lambda step is idempotent.
        {
            "ErrorEquals": ["Sandbox.Timedout", "States.Timeout"],
            "IntervalSeconds": 5,
            "MaxAttempts": 2,
            "BackoffRate": 2.0,
        },
    ]
    for name in ("ValidateOrders", "PublishBatch", "CatalogBatch", "CleanUp", "QuarantineInput"):
        assert states[name]["Retry"] == lambda_retry, name
    # Before publication a failure quarantines the input, unless the step timed out after
    # its retries: then it is the step's failure, not the file's (PublishBatch may have
    # written the pointer), and operators are told to re-run
    timed_out = {
        "ErrorEquals": ["Sandbox.Timedout", "States.Timeout"],
        "ResultPath": "$.error",
        "Next": "NotifyStateFailure",
    }
    for name in ("ValidateOrders", "TransformOrders", "PublishBatch"):
        assert states[name]["Catch"] == [timed_out, *CATCH_ALL], name
    for name in ("MergeState", "CatalogBatch"):
        assert states[name]["Catch"] == CATCH_STATE, name
    # Clean-up failures never fail a published batch
    assert states["CleanUp"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.clean_up", "Next": "CleanUpFailed"}
    ]
    assert states["TransformOrders"]["Retry"] == [
        {
            "ErrorEquals": ["Glue.ConcurrentRunsExceededException", "Glue.ThrottlingException"],
            "IntervalSeconds": 60,
            "MaxAttempts": 5,
            "BackoffRate": 2.0,
        },
        {
            "ErrorEquals": ["States.Timeout"],
            "IntervalSeconds": 60,
            "MaxAttempts": 1,
            "BackoffRate": 2.0,
        },
    ]
    # A merge that lost to other merges more often than it tries on its own, or failed
    # briefly, runs once more at a random moment (a merge is idempotent)
    assert states["MergeState"]["Retry"] == [
        {
            "ErrorEquals": ["Glue.ConcurrentRunsExceededException", "Glue.ThrottlingException"],
            "IntervalSeconds": 30,
            "MaxAttempts": 5,
            "BackoffRate": 2.0,
        },
        {
            "ErrorEquals": ["States.TaskFailed"],
            "IntervalSeconds": 30,
            "MaxAttempts": 2,
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL",
        },
    ]
    # No retrier ever matches everything: only transient errors are retried.
    for state in states.values():
        for retrier in state.get("Retry", []):
            assert "States.ALL" not in retrier["ErrorEquals"]


def test_merge_runs_the_state_job_on_the_batch(asl: dict[str, Any]) -> None:
    merge = asl["States"]["MergeState"]
    assert merge["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    assert merge["Parameters"] == {
        "JobName": "duffbeer-maintain-state",
        "Arguments": {
            "--processed_path": "s3://duffbeer-processed-orders/",
            "--database": "duffbeer_reports",
            "--batch_id.$": "$.batch_id",
            "--run_id.$": "$$.Execution.Name",
        },
    }
    assert merge["ResultSelector"] == {"job_run_id.$": "$.Id", "state.$": "$.JobRunState"}


def test_transform_runs_the_glue_job_synchronously_with_string_arguments(
    asl: dict[str, Any],
) -> None:
    transform = asl["States"]["TransformOrders"]
    assert transform["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    assert transform["Parameters"] == {
        "JobName": "duffbeer-transform-orders",
        "Arguments": {
            "--input_path.$": (
                "States.Format('s3://duffbeer-processed-orders/{}', $.validation.staged_input)"
            ),
            "--source_uri.$": "States.Format('s3://{}/{}', $.bucket, $.key)",
            "--source_version_id.$": "$.validation.source_version_id",
            "--output_path": "s3://duffbeer-processed-orders/",
            "--batch_id.$": "$.batch_id",
            "--run_id.$": "$$.Execution.Name",
            "--ingest_date.$": "$.validation.ingest_date",
            "--source_event_time.$": "$.event_time",
            "--source_etag.$": "$.etag",
            "--source_sequencer.$": "$.sequencer",
            "--rerun_at.$": "$.rerun_at",
            "--max_reject_ratio": "0.05",
        },
    }
    # Only timestamp-free fields of the JobRun are kept in the execution state.
    assert transform["ResultSelector"] == {"job_run_id.$": "$.Id", "state.$": "$.JobRunState"}
    assert (transform["ResultPath"], transform["TimeoutSeconds"]) == ("$.transform", 7200)


def test_lambda_steps_pass_the_run_id_and_keep_a_small_result(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert states["ValidateOrders"]["Resource"] == "arn:aws:states:::lambda:invoke"
    assert states["ValidateOrders"]["Parameters"] == {
        "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:duffbeer-validate_orders",
        "Payload": {
            "batch_id.$": "$.batch_id",
            "run_id.$": "$$.Execution.Name",
            "bucket.$": "$.bucket",
            "key.$": "$.key",
            "version_id.$": "$.version_id",
            "etag.$": "$.etag",
            "event_time.$": "$.event_time",
        },
    }
    assert states["ValidateOrders"]["ResultPath"] == "$.validation"
    assert states["ValidateOrders"]["ResultSelector"]["staged_input.$"] == (
        "$.Payload.staged_input"
    )
    assert states["PublishBatch"]["Parameters"]["Payload"] == {
        "batch_id.$": "$.batch_id",
        "run_id.$": "$$.Execution.Name",
    }
    assert states["PublishBatch"]["ResultSelector"] == {
        "outcome.$": "$.Payload.outcome",
        "published_run_id.$": "$.Payload.published_run_id",
        "rows_read.$": "$.Payload.rows_read",
        "rows_valid.$": "$.Payload.rows_valid",
        "rows_rejected.$": "$.Payload.rows_rejected",
        "partitions.$": "$.Payload.partitions",
    }
    assert states["CatalogBatch"]["ResultPath"] == "$.catalog"


def test_failure_path_quarantines_notifies_and_fails_with_the_original_error(
    asl: dict[str, Any],
) -> None:
    states = asl["States"]
    assert states["QuarantineInput"]["Parameters"]["Payload"]["error.$"] == "$.error.Error"
    assert states["QuarantineInput"]["Parameters"]["Payload"]["cause.$"] == "$.error.Cause"
    assert states["QuarantineFailed"]["Result"] == {"location": None, "report": None}
    notify = states["NotifyFailure"]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"]["TopicArn"] == (
        "arn:aws:sns:us-east-1:123456789012:duffbeer-orders-alerts"
    )
    assert notify["Parameters"]["Message"] == {
        "batch_id.$": "$.batch_id",
        "execution.$": "$$.Execution.Name",
        "execution_arn.$": "$$.Execution.Id",
        "bucket.$": "$.bucket",
        "key.$": "$.key",
        "error.$": "$.error.Error",
        "cause.$": "$.error.Cause",
        "quarantine_location.$": "$.quarantine.location",
        "error_report.$": "$.quarantine.report",
    }
    assert notify["ResultPath"] is None
    notify_state = states["NotifyStateFailure"]["Parameters"]["Message"]
    assert "quarantine_location.$" not in notify_state
    assert notify_state["error.$"] == "$.error.Error"
    assert states["BatchFailed"] == {
        "Comment": "Ends the execution with the error and cause of the step that failed.",
        "Type": "Fail",
        "ErrorPath": "$.error.Error",
        "CausePath": "$.error.Cause",
    }


def test_config_values_flow_into_the_definition() -> None:
    # Given a deployment with its own names and a stricter reject threshold
    config = WorkflowConfig(
        state_machine_name="acme-orders",
        role_arn="arn:aws:iam::111122223333:role/acme-states",
        validate_function_arn="arn:aws:lambda:eu-west-1:111122223333:function:acme-validate",
        publish_function_arn="arn:aws:lambda:eu-west-1:111122223333:function:acme-publish",
        catalog_function_arn="arn:aws:lambda:eu-west-1:111122223333:function:acme-catalog",
        clean_up_function_arn="arn:aws:lambda:eu-west-1:111122223333:function:acme-clean",
        quarantine_function_arn="arn:aws:lambda:eu-west-1:111122223333:function:acme-quarantine",
        glue_job_name="acme-transform",
        state_job_name="acme-state",
        processed_bucket="acme-processed",
        database="acme_reports",
        failure_topic_arn="arn:aws:sns:eu-west-1:111122223333:acme-alerts",
        max_reject_ratio=0.01,
    )

    # When the definition is built
    states = definition_dict(config)["States"]

    # Then each resource comes from the configuration
    assert states["TransformOrders"]["Parameters"]["JobName"] == "acme-transform"
    arguments = states["TransformOrders"]["Parameters"]["Arguments"]
    assert (arguments["--output_path"], arguments["--max_reject_ratio"]) == (
        "s3://acme-processed/",
        "0.01",
    )
    assert states["MergeState"]["Parameters"]["Arguments"]["--database"] == "acme_reports"
    assert [states[s]["Parameters"]["FunctionName"] for s in ("PublishBatch", "CatalogBatch")] == [
        "arn:aws:lambda:eu-west-1:111122223333:function:acme-publish",
        "arn:aws:lambda:eu-west-1:111122223333:function:acme-catalog",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state_machine_name": "has spaces"}, "state_machine_name"),
        ({"catalog_function_arn": "duffbeer-catalog"}, "catalog_function_arn"),
        ({"processed_bucket": "bucket/with/prefix"}, "processed_bucket"),
        ({"max_reject_ratio": 1.5}, "max_reject_ratio"),
        ({"glue_timeout_seconds": 20_000}, "execution_timeout_seconds must exceed"),
    ],
)
def test_invalid_config_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        dataclasses.replace(WorkflowConfig.example(), **change)


def test_sdk_workflow_renders_the_same_definition() -> None:
    # Given a client that is never called (building a Workflow makes no AWS call)
    client = boto3.client("stepfunctions", region_name="us-east-1")

    # When the SDK Workflow is built
    workflow = build_definition(WorkflowConfig.example(), client=client)

    # Then it carries the name, role and exactly the ASL of definition_dict
    assert (workflow.name, workflow.role) == (
        "duffbeer-orders-etl",
        "arn:aws:iam::123456789012:role/duffbeer-orders-etl-states",
    )
    assert workflow.definition.to_dict() == definition_dict(WorkflowConfig.example())
    assert json.loads(definition_json(WorkflowConfig.example())) == workflow.definition.to_dict()


def test_export_writes_asl_and_cloudformation(tmp_path: Path) -> None:
    # When the definition is exported / Then both documents are written and agree
    export(tmp_path, WorkflowConfig.example())
    asl = json.loads((tmp_path / ASL_FILE).read_text())
    assert asl == definition_dict(WorkflowConfig.example())
    template = (tmp_path / CLOUDFORMATION_FILE).read_text()
    assert "AWS::StepFunctions::StateMachine" in template
    assert "StateMachineName: duffbeer-orders-etl" in template


def test_export_script_runs_from_the_makefile_command_line(tmp_path: Path) -> None:
    # When `python workflows/export.py DIR` runs from another directory (as make does)
    completed = subprocess.run(
        [sys.executable, str(REPO / "workflows" / "export.py"), str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    # Then it succeeds and prints the two files it wrote
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == [
        str(tmp_path / "out" / ASL_FILE),
        str(tmp_path / "out" / CLOUDFORMATION_FILE),
    ]


def test_importing_the_sdk_keeps_the_root_logger_level() -> None:
    # Given a process whose root logger is at INFO
    code = (
        "import logging; logging.getLogger().setLevel(logging.INFO); "
        "import workflows.definition; print(logging.getLogger().level)"
    )

    # When the workflow module (and the SDK) is imported
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )

    # Then the root logger is still at INFO (the SDK sets it to ERROR on import)
    assert completed.stdout.strip() == "20"
