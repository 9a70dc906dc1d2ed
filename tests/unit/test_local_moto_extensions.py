"""The moto extension points exist and behave: real handlers, Catch on error names, .sync Glue,
and an endpoint that answers only to its run."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.s3 import models as s3_models
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback,
)

from duffbeer.errors import LocalModeError
from duffbeer_local import moto_extensions
from duffbeer_local.server import LocalAwsServer

HANDLER = textwrap.dedent(
    """
    import os
    from urllib.parse import unquote_plus

    import boto3

    class OrderRejectedError(Exception):
        pass

    def handler(event, context):
        if "Records" in event:  # an S3 notification: record what arrived, through S3 itself
            record = event["Records"][0]["s3"]
            key = unquote_plus(record["object"]["key"])
            sequencer = record["object"].get("sequencer")
            seen = f"{record['bucket']['name']}/{key}|{sequencer}"
            s3 = boto3.client("s3")
            s3.put_object(Bucket="marker-bucket", Key="seen.txt", Body=seen)
            name = event["Records"][0]["eventName"]
            s3.put_object(Bucket="marker-bucket", Key=f"events/{sequencer}", Body=name)
            return {"ok": True}
        if event.get("fail"):
            raise OrderRejectedError(f"order {event['order_id']} rejected")
        return {"stage": os.environ["STAGE"], "event": event}
    """
)

JOB_SCRIPT = textwrap.dedent(
    """
    import json, pathlib, sys

    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    text = pathlib.Path(args["--input_path"]).read_text()
    if "boom" in text:
        raise ValueError("row 2 of " + pathlib.Path(args["--input_path"]).name + " is boom")
    root = pathlib.Path(args["--output_path"])
    batch = args["--batch_id"]
    manifest = root / "manifests" / f"{batch}.json"
    previous = json.loads(manifest.read_text()) if manifest.exists() else None
    run = root / "runs" / batch / args["--run_id"]
    run.mkdir(parents=True)
    (run / "lines.txt").write_text(text.upper())
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"run": args["--run_id"], "previous": previous}))
    """
)


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _wait_execution(sfn: Any, arn: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.2)
    raise AssertionError(f"execution {arn} still running after {timeout} s")


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAwsServer]:
    with LocalAwsServer(state_dir=tmp_path_factory.mktemp("local")) as server:
        yield server


@pytest.fixture(scope="module")
def role(aws: LocalAwsServer) -> str:
    arn: str = aws.client("iam").create_role(RoleName="local-test", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    return arn


@pytest.fixture(scope="module")
def function_arn(aws: LocalAwsServer, role: str) -> str:
    arn: str = aws.client("lambda").create_function(
        FunctionName="orders-fn",
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": _zip({"app.py": HANDLER})},
        Environment={"Variables": {"STAGE": "local"}},
        Timeout=30,
    )["FunctionArn"]
    return arn


def test_every_extension_point_is_present_in_the_pinned_moto() -> None:
    moto_extensions.check()
    moto_extensions.install()
    moto_extensions.install()  # idempotent
    assert moto_extensions.is_installed()


def test_a_moved_extension_point_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a moto whose .sync code no longer looks like the one the guard was written for
    cls = state_task_service_callback.StateTaskServiceCallback
    monkeypatch.setattr(cls, "_eval_integration_pattern", lambda self, *a: None)
    # Then the check names the extension point instead of failing later at run time
    with pytest.raises(LocalModeError, match="_eval_integration_pattern changed"):
        moto_extensions.check()


def test_invoke_runs_the_uploaded_handler(aws: LocalAwsServer, function_arn: str) -> None:
    lam = aws.client("lambda")
    ok = lam.invoke(FunctionName="orders-fn", Payload=json.dumps({"order_id": 1}), LogType="Tail")
    failed = lam.invoke(FunctionName="orders-fn", Payload=json.dumps({"fail": 1, "order_id": 2}))
    assert "FunctionError" not in ok
    assert json.loads(ok["Payload"].read()) == {"stage": "local", "event": {"order_id": 1}}
    assert failed["FunctionError"] == "Handled"
    error = json.loads(failed["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == ("OrderRejectedError", "order 2 rejected")
    # And the invocations' logs are in the function's log group, as on Lambda
    tail = base64.b64decode(ok["LogResult"]).decode()
    assert tail.startswith("START RequestId: ") and "REPORT RequestId: " in tail
    events = aws.client("logs").filter_log_events(logGroupName="/aws/lambda/orders-fn")["events"]
    messages = [e["message"] for e in events]
    assert any("OrderRejectedError: order 2 rejected" in m for m in messages)
    assert sum(m.startswith("START RequestId: ") for m in messages) >= 2


def test_step_functions_catch_sees_the_exception_class_name(
    aws: LocalAwsServer, role: str, function_arn: str
) -> None:
    sfn = aws.client("stepfunctions")
    definition = {
        "StartAt": "Validate",
        "States": {
            "Validate": {
                "Type": "Task",
                "Resource": function_arn,
                "Catch": [
                    {
                        "ErrorEquals": ["OrderRejectedError"],
                        "ResultPath": "$.error",
                        "Next": "Rejected",
                    }
                ],
                "End": True,
            },
            "Rejected": {"Type": "Pass", "End": True},
        },
    }
    machine = sfn.create_state_machine(
        name="catch-test", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    arn = sfn.start_execution(
        stateMachineArn=machine, name="reject-9", input=json.dumps({"fail": 1, "order_id": 9})
    )["executionArn"]
    result = _wait_execution(sfn, arn)
    assert result["status"] == "SUCCEEDED"
    output = json.loads(result["output"])
    assert output["error"]["Error"] == "OrderRejectedError"
    assert json.loads(output["error"]["Cause"])["errorMessage"] == "order 9 rejected"


def test_s3_notification_invokes_the_function_with_the_event(
    aws: LocalAwsServer, function_arn: str
) -> None:
    s3 = aws.client("s3")
    for bucket in ("notify-bucket", "marker-bucket"):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket="notify-bucket",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": function_arn, "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    # When the same bytes are uploaded twice under a key that needs percent-encoding
    seen = []
    for _ in range(2):
        s3.put_object(Bucket="notify-bucket", Key="raw/orders 2024.csv", Body=b"x")
        seen.append(s3.get_object(Bucket="marker-bucket", Key="seen.txt")["Body"].read().decode())
    # Then each PUT invoked the function with the key, and with its own, increasing sequencer
    (first_key, first_seq), (second_key, second_seq) = (s.split("|") for s in seen)
    assert first_key == second_key == "notify-bucket/raw/orders 2024.csv"
    assert first_seq != "None" and int(first_seq, 16) < int(second_seq, 16)


def test_a_multipart_upload_notifies_once(aws: LocalAwsServer, function_arn: str) -> None:
    # Given a bucket notifying the function of every created object
    s3 = aws.client("s3")
    for bucket in ("multipart-bucket", "marker-bucket"):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket="multipart-bucket",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": function_arn, "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    before = s3.list_objects_v2(Bucket="marker-bucket", Prefix="events/").get("KeyCount", 0)
    # When a 9 MB file is uploaded with boto3's defaults (multipart above 8 MB)
    s3.upload_fileobj(io.BytesIO(b"x" * 9 * 1024**2), "multipart-bucket", "big.csv")
    # Then the function was invoked once, with the multipart completion event, as on AWS
    listed = s3.list_objects_v2(Bucket="marker-bucket", Prefix="events/")["Contents"]
    names = [
        s3.get_object(Bucket="marker-bucket", Key=o["Key"])["Body"].read().decode() for o in listed
    ]
    assert len(names) - before == 1
    assert "ObjectCreated:CompleteMultipartUpload" in names


def test_a_moved_multipart_extension_point_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a moto whose multipart completion no longer stores through put_object
    monkeypatch.setattr(
        s3_models.S3Backend, "complete_multipart_upload", lambda self, *a, **k: None
    )
    # Then the check says which extension point moved
    with pytest.raises(LocalModeError, match="complete_multipart_upload changed"):
        moto_extensions.check()


def test_glue_sync_task_runs_the_script_and_reports_state_and_error(
    aws: LocalAwsServer, role: str
) -> None:
    # Given a Glue job whose script lives in S3 and a state machine waiting on it with .sync
    s3, glue, sfn = aws.client("s3"), aws.client("glue"), aws.client("stepfunctions")
    for bucket in ("job-artifacts", "job-input", "job-output"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="job-artifacts", Key="job.py", Body=JOB_SCRIPT.encode())
    s3.put_object(Bucket="job-input", Key="good.csv", Body=b"duff")
    s3.put_object(Bucket="job-input", Key="bad.csv", Body=b"boom")
    s3.put_object(Bucket="job-output", Key="manifests/b1.json", Body=b'{"run": "r0"}')
    glue.create_job(
        Name="transform",
        Role=role,
        GlueVersion="5.0",
        Command={"Name": "glueetl", "ScriptLocation": "s3://job-artifacts/job.py"},
        DefaultArguments={"--output_path": "s3://job-output/", "--batch_id": "b1"},
    )
    definition = {
        "StartAt": "Transform",
        "States": {
            "Transform": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun.sync",
                "Parameters": {
                    "JobName": "transform",
                    "Arguments": {"--input_path.$": "$.input", "--run_id.$": "$.run"},
                },
                "ResultSelector": {"state.$": "$.JobRunState", "id.$": "$.Id"},
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name="glue-sync", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]

    # When one run succeeds and a second fails
    good = sfn.start_execution(
        stateMachineArn=machine,
        name="good",
        input=json.dumps({"input": "s3://job-input/good.csv", "run": "r1"}),
    )["executionArn"]
    good_result = _wait_execution(sfn, good)
    bad = sfn.start_execution(
        stateMachineArn=machine,
        name="bad",
        input=json.dumps({"input": "s3://job-input/bad.csv", "run": "r2"}),
    )["executionArn"]
    bad_result = _wait_execution(sfn, bad)

    # Then the .sync task waited for each run and saw its final state
    assert good_result["status"] == "SUCCEEDED"
    run_id = json.loads(good_result["output"])["id"]
    assert json.loads(good_result["output"])["state"] == "SUCCEEDED"
    assert bad_result["status"] == "FAILED"
    assert bad_result["error"] == "States.TaskFailed"
    assert json.loads(bad_result["cause"])["ErrorMessage"] == "ValueError: row 2 of bad.csv is boom"
    # And GetJobRun reports the same
    states = {
        r["Id"]: (r["JobRunState"], r.get("ErrorMessage"))
        for r in glue.get_job_runs(JobName="transform")["JobRuns"]
    }
    assert states[run_id] == ("SUCCEEDED", None)
    assert sorted(states.values(), key=str) == sorted(
        [("SUCCEEDED", None), ("FAILED", "ValueError: row 2 of bad.csv is boom")], key=str
    )
    # And the successful run's outputs were uploaded, its manifest carrying the previous one
    lines = s3.get_object(Bucket="job-output", Key="runs/b1/r1/lines.txt")["Body"].read()
    manifest = json.loads(
        s3.get_object(Bucket="job-output", Key="manifests/b1.json")["Body"].read()
    )
    assert lines == b"DUFF"
    assert manifest == {"run": "r1", "previous": {"run": "r0"}}


def test_glue_refuses_an_update_based_on_a_stale_table_version(aws: LocalAwsServer) -> None:
    # Given a table, read by two writers at the same version
    glue = aws.client("glue")
    glue.create_database(DatabaseInput={"Name": "locking"})
    glue.create_table(
        DatabaseName="locking",
        TableInput={"Name": "t", "Parameters": {"metadata_location": "s3://b/v1.json"}},
    )
    [read] = glue.get_table_versions(DatabaseName="locking", TableName="t")["TableVersions"]
    version = read["VersionId"]
    # When both commit an update based on that version (as Iceberg's Glue commits do)
    first = {"Name": "t", "Parameters": {"metadata_location": "s3://b/v2.json"}}
    second = {"Name": "t", "Parameters": {"metadata_location": "s3://b/v2-other.json"}}
    glue.update_table(DatabaseName="locking", TableInput=first, VersionId=version)
    with pytest.raises(glue.exceptions.ConcurrentModificationException):
        glue.update_table(DatabaseName="locking", TableInput=second, VersionId=version)
    # Then the first update stands, as on AWS; an update without a version is unconditional
    table = glue.get_table(DatabaseName="locking", Name="t")["Table"]
    assert table["Parameters"]["metadata_location"] == "s3://b/v2.json"
    glue.update_table(DatabaseName="locking", TableInput=second)
    table = glue.get_table(DatabaseName="locking", Name="t")["Table"]
    assert table["Parameters"]["metadata_location"] == "s3://b/v2-other.json"


FLAKY_JOB_SCRIPT = textwrap.dedent(
    """
    import pathlib, sys

    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    attempts = pathlib.Path(args["--attempts_file"])
    attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
    if len(attempts.read_text()) == 1:
        raise RuntimeError("the first attempt fails")
    """
)


def test_a_retried_glue_sync_task_waits_for_its_next_run(
    aws: LocalAwsServer, role: str, tmp_path: Path
) -> None:
    # Given a Glue job that fails once then succeeds, behind a .sync task with a Retry
    s3, glue, sfn = aws.client("s3"), aws.client("glue"), aws.client("stepfunctions")
    s3.create_bucket(Bucket="flaky-artifacts")
    s3.put_object(Bucket="flaky-artifacts", Key="flaky.py", Body=FLAKY_JOB_SCRIPT.encode())
    glue.create_job(
        Name="flaky",
        Role=role,
        GlueVersion="5.0",
        Command={"Name": "glueetl", "ScriptLocation": "s3://flaky-artifacts/flaky.py"},
    )
    attempts = tmp_path / "attempts.txt"
    definition = {
        "StartAt": "Run",
        "States": {
            "Run": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun.sync",
                "Parameters": {"JobName": "flaky", "Arguments": {"--attempts_file": str(attempts)}},
                "TimeoutSeconds": 300,
                "Retry": [
                    {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "MaxAttempts": 2}
                ],
                "ResultSelector": {"state.$": "$.JobRunState"},
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name="glue-sync-retry", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]

    # When it runs
    arn = sfn.start_execution(stateMachineArn=machine, name="retried")["executionArn"]
    result = _wait_execution(sfn, arn)

    # Then the second attempt's run was waited for, and the execution succeeded
    assert result["status"] == "SUCCEEDED", result.get("cause")
    assert json.loads(result["output"]) == {"state": "SUCCEEDED"}
    assert attempts.read_text() == "xx"
    states = sorted(r["JobRunState"] for r in glue.get_job_runs(JobName="flaky")["JobRuns"])
    assert states == ["FAILED", "SUCCEEDED"]


# These two stop the module's server: they run last.


# Local mode's endpoint answers only to the credentials of its run ------------------------

INTRUDER = textwrap.dedent(
    """
    import io, sys, zipfile
    import boto3

    endpoint, marker = sys.argv[1], sys.argv[2]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr(
            "evil.py",
            f"def handler(event, context):\\n    open({marker!r}, 'w').write('ran')\\n",
        )
    lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
    lam.create_function(
        FunctionName="evil", Runtime="python3.11", Handler="evil.handler",
        Role="arn:aws:iam::123456789012:role/local-test", Code={"ZipFile": code.getvalue()},
    )
    lam.invoke(FunctionName="evil", Payload=b"{}")
    """
)


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_the_endpoint_refuses_unsigned_requests_other_credentials_and_resets(
    aws: LocalAwsServer,
) -> None:
    # Given a bucket made with the run's credentials
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="kept")
    s3.put_object(Bucket="kept", Key="k", Body=b"v")
    # When requests come unsigned, signed with other credentials, or to moto's control API
    unsigned = _status(urllib.request.Request(f"{aws.endpoint_url}/kept/k"))
    reset = _status(
        urllib.request.Request(f"{aws.endpoint_url}/moto-api/reset", data=b"", method="POST")
    )
    dashboard = _status(urllib.request.Request(f"{aws.endpoint_url}/moto-api/"))
    other = boto3.client(
        "s3",
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with pytest.raises(ClientError) as refused:
        other.get_object(Bucket="kept", Key="k")
    foreign_url = other.generate_presigned_url("get_object", {"Bucket": "kept", "Key": "k"})
    # Then each is refused as AWS refuses an unknown key, and nothing was reset
    assert (unsigned, reset, dashboard) == (403, 403, 403)
    assert refused.value.response["Error"]["Code"] == "InvalidClientTokenId"
    assert _status(urllib.request.Request(foreign_url)) == 403
    # while the run's own signatures, presigned URLs included, are answered
    own_url = s3.generate_presigned_url("get_object", {"Bucket": "kept", "Key": "k"})
    assert _status(urllib.request.Request(own_url)) == 200
    assert s3.get_object(Bucket="kept", Key="k")["Body"].read() == b"v"


def test_another_process_cannot_run_code_through_the_endpoint(
    aws: LocalAwsServer, tmp_path: Path
) -> None:
    # Given a second process on the machine, with credentials of its own (not the run's)
    marker = tmp_path / "ran.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    # When it creates a function from its own zip and invokes it
    result = subprocess.run(
        [sys.executable, "-c", INTRUDER, aws.endpoint_url, str(marker)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then the endpoint refused it: no function, and its code never ran
    assert result.returncode == 1
    assert "InvalidClientTokenId" in result.stderr
    names = [f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]]
    assert "evil" not in names
    assert not marker.exists()


def test_outside_a_running_server_moto_behaves_as_shipped(aws: LocalAwsServer) -> None:
    # Given the extensions installed but no runtime bound (decorator mode, no LocalAwsServer)
    aws.stop()
    with mock_aws():
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_job(
            Name="j", Role="r", Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"}
        )
        run_id = glue.start_job_run(JobName="j")["JobRunId"]
        # Then StartJobRun runs nothing and moto's canned state comes back
        state = glue.get_job_run(JobName="j", RunId=run_id)["JobRun"]["JobRunState"]
    assert state == "SUCCEEDED"
    assert not (aws.state_dir / "glue").joinpath(run_id).exists()


def test_after_stop_decorator_mode_no_longer_executes_state_machines(aws: LocalAwsServer) -> None:
    # Given a local stack that enabled moto's state machine execution, now stopped
    aws.stop()
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="m",
            roleArn="arn:aws:iam::123456789012:role/r",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        )["stateMachineArn"]
        # When an execution starts in decorator mode
        execution = sfn.start_execution(stateMachineArn=arn, name="e")["executionArn"]
        # Then moto's shipped behaviour is back: nothing runs, the execution stays RUNNING
        status = sfn.describe_execution(executionArn=execution)["status"]
    assert status == "RUNNING"
