"""The deployed definition executed by moto's Step Functions interpreter, with real handlers.

A LocalAwsServer (duffbeer_local) runs the uploaded Lambda zips in worker processes and fixes
moto's `.sync` integration. The Glue jobs themselves are not run here (their own tests and the e2e
suite cover them): the runs moto records succeed at once, and the publication test writes
what the transform would have written for the run beforehand. Everything else is real: the
trigger names the execution, Validate reads the CSV and copies it to the run, Store writes
the batch pointer, MergeState starts the state job with the batch and the execution, the
Catalog and CleanUp steps run, and the failure path before publication quarantines,
notifies and fails.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.artifacts import build_lambda_zip
from duffbeer import naming
from duffbeer_local.server import LocalAwsServer
from lambdas.start_etl.trigger import InputObject, input_objects, start_executions
from tests.events.invocation import load_event
from workflows.definition import WorkflowConfig, definition_json

pytestmark = pytest.mark.functional

INPUT = "duffbeer-input-orders"
PROCESSED = "duffbeer-processed-orders"
FUNCTIONS = (
    "validate_orders",
    "publish_batch",
    "catalog_batch",
    "clean_up",
    "quarantine_batch",
)
# Fault injection around the shipped PublishBatch handler: the first invocation for a run
# publishes, then outlives the function's timeout (Lambda reports Sandbox.Timedout).
HANG_AFTER_PUBLISHING = """
import os
import time

import boto3
from botocore.exceptions import ClientError

from lambdas.publish_batch.handler import handler as publish


def handler(event, context):
    result = publish(event, context)
    s3 = boto3.client("s3")
    bucket, marker = os.environ["PROCESSED_BUCKET"], "test-markers/" + event["run_id"]
    try:
        s3.head_object(Bucket=bucket, Key=marker)
    except ClientError:
        s3.put_object(Bucket=bucket, Key=marker, Body=b"")
        time.sleep(60)
    return result
"""
SAMPLE = (
    b"client_id,client_name,order_id,product_id,product_description,product_price,"
    b"product_ccf,product_volume,point_of_sale_channel,status\n"
    b"1001,Moe's Tavern,5678,102,Duff Classic,2.50,6,0.33,Retail,created\n"
    b"1002,Kwik-E-Mart,5679,103,Duff Lite,2.00,12,0.5,B2B,delivered\n"
)


@dataclasses.dataclass
class Stack:
    aws: LocalAwsServer
    state_machine_arn: str
    queue_url: str
    # The same definition pointed at a Glue job that does not exist.
    broken_state_machine_arn: str
    # The same definition whose PublishBatch outlives its timeout once, after its write.
    hanging_store_state_machine_arn: str
    # SNS notifications received so far, by execution name.
    notices: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def client(self, service: str) -> Any:
        return self.aws.client(service)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("local")
    with LocalAwsServer(state_dir=state, run_glue=False) as aws:
        yield _deploy(aws, state)


def _deploy(aws: LocalAwsServer, build: Path) -> Stack:
    """The resources the state machine uses, created the way deploy does (minimal)."""
    s3, iam, lam, sns, sqs = (aws.client(s) for s in ("s3", "iam", "lambda", "sns", "sqs"))
    for bucket in (INPUT, PROCESSED):
        s3.create_bucket(Bucket=bucket)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="duffbeer-test", AssumeRolePolicyDocument=json.dumps(trust))
    role_arn = role["Role"]["Arn"]
    arns = {}
    for name in FUNCTIONS:
        code = build_lambda_zip(name, build / "zips").read_bytes()
        created = lam.create_function(
            FunctionName=f"duffbeer-{name}",
            Runtime="python3.11",
            Role=role_arn,
            Handler=f"lambdas.{name}.handler.handler",
            Code={"ZipFile": code},
            Timeout=60,
            Environment={
                "Variables": {
                    "PROCESSED_BUCKET": PROCESSED,
                    "POWERTOOLS_SERVICE_NAME": name,
                    "LOG_LEVEL": "INFO",
                }
            },
        )
        arns[name] = created["FunctionArn"]
    hanging_zip = build / "zips" / "lambda_publish_batch_hanging.zip"
    shutil.copy(build / "zips" / "lambda_publish_batch.zip", hanging_zip)
    with zipfile.ZipFile(hanging_zip, "a") as archive:
        archive.writestr("hang_after_publishing.py", HANG_AFTER_PUBLISHING)
    hanging = lam.create_function(
        FunctionName="duffbeer-publish_batch-hanging",
        Runtime="python3.11",
        Role=role_arn,
        Handler="hang_after_publishing.handler",
        Code={"ZipFile": hanging_zip.read_bytes()},
        Timeout=3,
        Environment={"Variables": {"PROCESSED_BUCKET": PROCESSED, "LOG_LEVEL": "INFO"}},
    )
    topic_arn = sns.create_topic(Name="duffbeer-orders-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    for job in ("duffbeer-transform-orders", "duffbeer-maintain-state"):
        aws.client("glue").create_job(
            Name=job,
            Role=role_arn,
            Command={"Name": "glueetl", "ScriptLocation": f"s3://{PROCESSED}/artifacts/t.py"},
            GlueVersion="5.0",
        )
    config = WorkflowConfig(
        state_machine_name="duffbeer-orders-etl",
        role_arn=role_arn,
        validate_function_arn=arns["validate_orders"],
        publish_function_arn=arns["publish_batch"],
        catalog_function_arn=arns["catalog_batch"],
        clean_up_function_arn=arns["clean_up"],
        quarantine_function_arn=arns["quarantine_batch"],
        glue_job_name="duffbeer-transform-orders",
        state_job_name="duffbeer-maintain-state",
        processed_bucket=PROCESSED,
        database="duffbeer_reports",
        failure_topic_arn=topic_arn,
    )
    sfn = aws.client("stepfunctions")
    created_sm = sfn.create_state_machine(
        name=config.state_machine_name, definition=definition_json(config), roleArn=role_arn
    )
    broken = dataclasses.replace(
        config, state_machine_name="duffbeer-orders-etl-nojob", glue_job_name="duffbeer-missing"
    )
    broken_sm = sfn.create_state_machine(
        name=broken.state_machine_name, definition=definition_json(broken), roleArn=role_arn
    )
    hanging = dataclasses.replace(
        config,
        state_machine_name="duffbeer-orders-etl-hanging-store",
        publish_function_arn=hanging["FunctionArn"],
    )
    hanging_sm = sfn.create_state_machine(
        name=hanging.state_machine_name, definition=definition_json(hanging), roleArn=role_arn
    )
    return Stack(
        aws=aws,
        state_machine_arn=created_sm["stateMachineArn"],
        queue_url=queue_url,
        broken_state_machine_arn=broken_sm["stateMachineArn"],
        hanging_store_state_machine_arn=hanging_sm["stateMachineArn"],
    )


def _upload(stack: Stack, key: str, body: bytes) -> InputObject:
    """Upload `body`; the object as start_etl reads it from the S3 event."""
    put = stack.client("s3").put_object(Bucket=INPUT, Key=key, Body=body)
    event = load_event("s3_put_single")
    record = event["Records"][0]["s3"]["object"]
    record.update({"key": key, "size": len(body), "eTag": put["ETag"].strip('"')})
    (obj,) = input_objects(event)
    return obj


def _start(stack: Stack, obj: InputObject, state_machine_arn: str | None = None) -> str:
    """Start the execution through start_etl's logic; return its ARN."""
    arn = state_machine_arn or stack.state_machine_arn
    summary = start_executions([obj], state_machine_arn=arn, client=stack.client("stepfunctions"))
    assert summary.started == [obj.execution_name]
    return f"{arn.replace(':stateMachine:', ':execution:')}:{obj.execution_name}"


def _wait(stack: Stack, arn: str, timeout: float = 180.0) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.5)


def _visited(stack: Stack, arn: str) -> list[str]:
    events = stack.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    return [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]


def _write_as_the_job_would(stack: Stack, batch_id: str, run_id: str) -> None:
    """The outputs and run manifest the Glue job writes for a successful run."""
    s3 = stack.client("s3")
    root = naming.run_prefix(batch_id, run_id)
    partitions = []
    for channel in ("B2B", "Retail"):
        location = f"{root}order_lines/point_of_sale_channel={channel}/order_date=2026-11-28/"
        s3.put_object(Bucket=PROCESSED, Key=f"{location}part-00000.parquet", Body=b"PAR1")
        partitions.append(
            {
                "point_of_sale_channel": channel,
                "order_date": "2026-11-28",
                "location": location,
                "rows": 1,
            }
        )
    reports = {name: f"{root}reports/{name}/" for name in naming.BATCH_REPORTS}
    for prefix in reports.values():
        s3.put_object(Bucket=PROCESSED, Key=f"{prefix}part-00000.parquet", Body=b"PAR1")
    outputs = {
        "order_lines": f"{root}order_lines/",
        "reports": reports,
        "rejects": f"{root}rejects/",
    }
    manifest = {
        "manifest_version": 1,
        "batch_id": batch_id,
        "run_id": run_id,
        "status": "SUCCEEDED",
        "error": None,
        "source": {
            "path": "s3://x",
            "size": len(SAMPLE),
            "event_time": "2026-11-28T08:00:00+00:00",
        },
        "rows_read": 2,
        "rows_valid": 2,
        "rows_rejected": 0,
        "partitions": partitions,
        "outputs": outputs,
        "total_sales": "39.00",
        "published": None,
    }
    body = json.dumps(manifest).encode()
    s3.put_object(Bucket=PROCESSED, Key=naming.run_manifest_key(batch_id, run_id), Body=body)


def test_a_valid_batch_is_published_merged_cataloged_and_cleaned_up(stack: Stack) -> None:
    # Given a valid orders file whose Glue run writes its outputs (the state job's run is
    # recorded as succeeded without running)
    key = "incoming/orders-2026-11-28.csv"
    obj = _upload(stack, key, SAMPLE)
    batch_id, run_id = obj.batch_id, obj.execution_name
    _write_as_the_job_would(stack, batch_id, run_id)

    # When its execution runs
    execution = _start(stack, obj)
    described = _wait(stack, execution)

    # Then every step ran in order and the execution succeeded
    assert described["status"] == "SUCCEEDED", described
    assert _visited(stack, execution) == [
        "ReadInput",
        "ValidateOrders",
        "TransformOrders",
        "PublishBatch",
        "MergeState",
        "CatalogBatch",
        "CleanUp",
        "BatchSucceeded",
    ]
    output = json.loads(described["output"])
    assert output["store"]["outcome"] == "published"
    assert output["merge"]["state"] == "SUCCEEDED"
    assert output["clean_up"] == {"deleted_runs": [], "errors": []}
    # ... the batch pointer names the run and nothing was quarantined
    s3 = stack.client("s3")
    pointer = json.loads(
        s3.get_object(Bucket=PROCESSED, Key=naming.manifest_key(batch_id))["Body"].read()
    )
    assert (pointer["run_id"], pointer["published"]["run_id"]) == (run_id, run_id)
    quarantine = s3.list_objects_v2(Bucket=PROCESSED, Prefix=naming.QUARANTINE_PREFIX)
    assert quarantine.get("KeyCount", 0) == 0
    # ... the transform read the run's own copy of the upload, recording the original, its
    # sequencer and no re-run time (an upload's own run)
    copy = s3.get_object(Bucket=PROCESSED, Key=naming.run_input_key(batch_id, run_id))
    assert copy["Body"].read() == SAMPLE
    runs = stack.client("glue").get_job_runs(JobName="duffbeer-transform-orders")["JobRuns"]
    arguments = next(r["Arguments"] for r in runs if r["Arguments"]["--run_id"] == run_id)
    assert arguments == {
        "--input_path": f"s3://{PROCESSED}/{naming.run_input_key(batch_id, run_id)}",
        "--source_uri": f"s3://{INPUT}/{key}",
        "--source_version_id": "",
        "--output_path": f"s3://{PROCESSED}/",
        "--batch_id": batch_id,
        "--run_id": run_id,
        "--ingest_date": "2026-11-28",
        "--source_event_time": "2026-11-28T08:00:00.000Z",
        "--source_etag": obj.etag,
        "--source_sequencer": obj.sequencer,
        "--rerun_at": "",
        "--max_reject_ratio": "0.05",
    }
    # ... and the state job was asked to merge this batch for this execution
    state_runs = stack.client("glue").get_job_runs(JobName="duffbeer-maintain-state")["JobRuns"]
    [merge] = [r["Arguments"] for r in state_runs if r["Arguments"]["--run_id"] == run_id]
    assert merge == {
        "--processed_path": f"s3://{PROCESSED}/",
        "--database": "duffbeer_reports",
        "--batch_id": batch_id,
        "--run_id": run_id,
    }


@pytest.mark.parametrize(
    ("file_name", "body", "error", "cause_part"),
    [
        ("semicolons.csv", SAMPLE.replace(b",", b";"), "DelimiterError", "delimited by ';'"),
        (
            "no-status.csv",
            SAMPLE.replace(b",status", b",state"),
            "MissingColumnsError",
            "missing from the header: status",
        ),
        ("latin1.csv", SAMPLE.replace(b"Moe's", b"Mo\xe9's"), "EncodingError", "not UTF-8"),
        ("header-only.csv", SAMPLE.split(b"\n", 1)[0] + b"\n", "EmptyFileError", "only a header"),
    ],
)
def test_invalid_file_is_quarantined_notified_and_fails_with_its_error(
    stack: Stack, file_name: str, body: bytes, error: str, cause_part: str
) -> None:
    # Given an invalid orders file
    obj = _upload(stack, f"incoming/{file_name}", body)
    batch_id, run_id = obj.batch_id, obj.execution_name

    # When its execution runs
    execution = _start(stack, obj)
    described = _wait(stack, execution)

    # Then the execution fails with the validator's error name, after the failure path
    assert described["status"] == "FAILED", described
    assert described["error"] == error
    assert cause_part in described["cause"]
    assert _visited(stack, execution) == [
        "ReadInput",
        "ValidateOrders",
        "QuarantineInput",
        "NotifyFailure",
        "BatchFailed",
    ]
    # ... the input is quarantined with its report
    prefix = naming.quarantine_prefix(batch_id, run_id)
    s3 = stack.client("s3")
    assert s3.get_object(Bucket=PROCESSED, Key=f"{prefix}{file_name}")["Body"].read() == body
    report = json.loads(s3.get_object(Bucket=PROCESSED, Key=f"{prefix}error.json")["Body"].read())
    assert (report["error"], report["reason"], report["run_id"]) == (error, error, run_id)
    # ... and operators were notified with where to look
    notice = _notice(stack, run_id)
    assert (notice["batch_id"], notice["error"]) == (batch_id, error)
    assert notice["quarantine_location"] == f"s3://{PROCESSED}/{prefix}{file_name}"
    assert notice["error_report"] == f"s3://{PROCESSED}/{prefix}error.json"


def _notice(stack: Stack, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The SNS notification of one execution, read (and removed) from the subscribed queue."""
    sqs = stack.client("sqs")
    deadline = time.monotonic() + timeout
    while run_id not in stack.notices and time.monotonic() < deadline:
        response = sqs.receive_message(
            QueueUrl=stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            body = json.loads(message["Body"])
            stack.notices[body["execution"]] = body
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return stack.notices[run_id]


def test_glue_failure_is_caught_into_the_failure_path(stack: Stack) -> None:
    # Given a valid file and a state machine whose Glue job cannot be started
    obj = _upload(stack, "incoming/no-job.csv", SAMPLE)

    # When its execution runs
    execution = _start(stack, obj, stack.broken_state_machine_arn)
    described = _wait(stack, execution)

    # Then the Transform error is quarantined, notified and kept as the execution's error
    assert described["status"] == "FAILED", described
    assert described["error"] == "Glue.EntityNotFoundException"
    assert _visited(stack, execution) == [
        "ReadInput",
        "ValidateOrders",
        "TransformOrders",
        "QuarantineInput",
        "NotifyFailure",
        "BatchFailed",
    ]
    prefix = naming.quarantine_prefix(obj.batch_id, obj.execution_name)
    report = json.loads(
        stack.client("s3").get_object(Bucket=PROCESSED, Key=f"{prefix}error.json")["Body"].read()
    )
    assert (report["error"], report["source"]["key"]) == (
        "Glue.EntityNotFoundException",
        "incoming/no-job.csv",
    )
    assert _notice(stack, obj.execution_name)["error"] == "Glue.EntityNotFoundException"


def test_a_publish_step_that_times_out_after_its_write_is_retried_to_published(
    stack: Stack,
) -> None:
    # Given a valid file whose PublishBatch writes the batch pointer, then runs out of time
    obj = _upload(stack, "incoming/hangs-after-publishing.csv", SAMPLE)
    _write_as_the_job_would(stack, obj.batch_id, obj.execution_name)

    # When its execution runs
    execution = _start(stack, obj, stack.hanging_store_state_machine_arn)
    described = _wait(stack, execution)

    # Then the timeout was retried, not taken for a bad file: the retry found the batch
    # published by the attempt that timed out, and the execution went on to succeed
    assert described["status"] == "SUCCEEDED", described
    events = stack.client("stepfunctions").get_execution_history(executionArn=execution)["events"]
    failures = [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]
    assert [f["error"] for f in failures] == ["Sandbox.Timedout"]
    assert "QuarantineInput" not in _visited(stack, execution)
    output = json.loads(described["output"])
    assert output["store"]["outcome"] == "already_published"
    assert output["store"]["published_run_id"] == obj.execution_name
    s3 = stack.client("s3")
    pointer = json.loads(
        s3.get_object(Bucket=PROCESSED, Key=naming.manifest_key(obj.batch_id))["Body"].read()
    )
    assert pointer["published"]["run_id"] == obj.execution_name
    prefix = naming.quarantine_prefix(obj.batch_id, obj.execution_name)
    assert s3.list_objects_v2(Bucket=PROCESSED, Prefix=prefix).get("KeyCount", 0) == 0
