"""What was uploaded is what gets published, whatever its name; nothing is dropped silently.

One deployed local stack. Every upload goes through boto3's standard S3 client against the
local endpoint (as `aws s3 cp` would), and its outcome is judged from the objects the run
left and the report figures over HTTP.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from duffbeer import manifest, naming
from duffbeer_local.executions import execution_arns, follow_execution, wait_for_execution
from duffbeer_local.pipeline import LocalPipeline, LocalSettings

pytestmark = pytest.mark.e2e

HEADER = (
    "client_id,client_name,order_id,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date"
)
ODD_KEYS = [
    "incoming/orders [v2] {a,b} *?.csv",
    "incoming/deep/a/b/c/d/e/f/orders with spaces+plus%25.csv",
    "incoming/münchen/straße/bestellungen.CSV",
    "incoming/Orders.Csv",
]


def _orders(client: int, orders: int, price: str = "2.00") -> bytes:
    """`orders` one-line orders of one client, price x 3 each, on their own date."""
    rows = [
        f"{client},Client {client},{client * 1000 + n},401,Duff Key,{price},3,0.5,Retail,"
        f"created,2025-02-{client % 28 + 1:02d}"
        for n in range(orders)
    ]
    return ("\n".join([HEADER, *rows]) + "\n").encode()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    settings = LocalSettings(state_dir=tmp_path_factory.mktemp("input-integrity"))
    with LocalPipeline(settings) as stack:
        stack.start_api()
        yield stack


def _s3(pipeline: LocalPipeline) -> Any:
    """A plain boto3 client on the local endpoint, as a user's script would build it from
    the credentials local mode prints."""
    return boto3.client(
        "s3",
        endpoint_url=pipeline.aws.endpoint_url,
        region_name=pipeline.settings.region,
        aws_access_key_id=pipeline.aws.credentials.access_key_id,
        aws_secret_access_key=pipeline.aws.credentials.secret_access_key,
    )


def _executions_for(pipeline: LocalPipeline, key: str, before: set[str]) -> list[str]:
    sfn = pipeline.aws.client("stepfunctions")
    found = []
    for arn in sorted(execution_arns(sfn, pipeline.outputs.state_machine_arn) - before):
        described = sfn.describe_execution(executionArn=arn)
        if json.loads(described["input"]).get("key") == key:
            found.append(arn)
    return found


def _finish(pipeline: LocalPipeline, arn: str) -> dict[str, Any]:
    return follow_execution(
        pipeline.aws.client("stepfunctions"), arn, lambda _line: None, timeout=900
    )


def _run_manifest(pipeline: LocalPipeline, described: dict[str, Any]) -> manifest.Manifest:
    document = json.loads(described["input"])
    key = naming.run_manifest_key(document["batch_id"], described["name"])
    body = pipeline.aws.client("s3").get_object(Bucket=pipeline.outputs.processed_bucket, Key=key)
    return manifest.loads(body["Body"].read())


def _client_totals(pipeline: LocalPipeline, client: int) -> Any:
    """The client's totals once the API serves them (a new version takes a moment)."""
    deadline = time.monotonic() + 60
    while True:
        status, body = pipeline.get(f"/orders/{client}")
        if status == 200 or time.monotonic() > deadline:
            return body.get("totals") if status == 200 else (status, body)
        time.sleep(0.5)


def test_any_key_is_read_exactly_and_published(pipeline: LocalPipeline) -> None:
    # Given keys with glob characters, spaces, +, %, non-ASCII letters, deep prefixes and
    # upper- or mixed-case extensions
    s3 = _s3(pipeline)
    bucket = pipeline.outputs.input_bucket
    sfn = pipeline.aws.client("stepfunctions")
    before = execution_arns(sfn, pipeline.outputs.state_machine_arn)
    for index, key in enumerate(ODD_KEYS):
        s3.put_object(Bucket=bucket, Key=key, Body=_orders(8100 + index, index + 1))
    # When they are processed
    described = {}
    for key in ODD_KEYS:
        arn = wait_for_execution(
            pipeline.aws.client("stepfunctions"),
            pipeline.outputs.state_machine_arn,
            key,
            before,
            timeout=60,
        )
        described[key] = _finish(pipeline, arn)
    # Then each run read exactly its object and published it
    for index, key in enumerate(ODD_KEYS):
        assert described[key]["status"] == "SUCCEEDED", (key, described[key].get("cause"))
        run = _run_manifest(pipeline, described[key])
        assert (run["source"]["key"], run["rows_read"], run["rows_valid"]) == (
            key,
            index + 1,
            index + 1,
        )
        assert _client_totals(pipeline, 8100 + index)["orders"] == index + 1


def test_the_run_publishes_the_announced_bytes_when_the_key_is_overwritten(
    pipeline: LocalPipeline,
) -> None:
    # Given an upload, overwritten right after its event, before its run has read it
    s3 = _s3(pipeline)
    bucket, key = pipeline.outputs.input_bucket, "incoming/overwritten.csv"
    sfn = pipeline.aws.client("stepfunctions")
    before = execution_arns(sfn, pipeline.outputs.state_machine_arn)
    first = _orders(8200, 2, price="1.00")
    second = _orders(8200, 3, price="5.00")
    s3.put_object(Bucket=bucket, Key=key, Body=first)
    s3.put_object(Bucket=bucket, Key=key, Body=second)
    # When both runs finish
    deadline = time.monotonic() + 60
    while len(arns := _executions_for(pipeline, key, set(before))) < 2:
        assert time.monotonic() < deadline, arns
        time.sleep(0.2)
    runs = [_finish(pipeline, arn) for arn in arns]
    # Then each run read and published exactly the bytes its own event announced ...
    processed = pipeline.aws.client("s3")
    published_inputs = set()
    for described in runs:
        assert described["status"] == "SUCCEEDED", described.get("cause")
        document = json.loads(described["input"])
        copy = processed.get_object(
            Bucket=pipeline.outputs.processed_bucket,
            Key=naming.run_input_key(document["batch_id"], described["name"]),
        )["Body"].read()
        announced = s3.get_object(Bucket=bucket, Key=key, VersionId=document["version_id"])
        assert copy == announced["Body"].read()
        run = _run_manifest(pipeline, described)
        assert run["source"]["version_id"] == document["version_id"]
        published_inputs.add(copy)
    assert published_inputs == {first, second}
    # ... and the batch shows the upload created last
    assert _client_totals(pipeline, 8200) == {"orders": 3, "lines": 3, "units": 9, "sales": 45.0}


@pytest.mark.parametrize(
    ("key", "body", "error"),
    [
        ("incoming/readme.txt", b"not orders\n", "NotCsvError"),
        ("incoming/empty.csv", b"", "EmptyFileError"),
    ],
)
def test_an_odd_upload_is_quarantined_and_notified(
    pipeline: LocalPipeline, key: str, body: bytes, error: str
) -> None:
    # Given operators listening on the alerts topic
    sqs, sns = pipeline.aws.client("sqs"), pipeline.aws.client("sns")
    queue = sqs.create_queue(QueueName=f"alerts-{error}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=pipeline.outputs.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    sfn = pipeline.aws.client("stepfunctions")
    before = execution_arns(sfn, pipeline.outputs.state_machine_arn)
    # When an object that is not an orders file is uploaded
    _s3(pipeline).put_object(Bucket=pipeline.outputs.input_bucket, Key=key, Body=body)
    arn = wait_for_execution(sfn, pipeline.outputs.state_machine_arn, key, before, timeout=60)
    described = _finish(pipeline, arn)
    # Then its run fails with the reason, a quarantine record names the key ...
    assert (described["status"], described["error"]) == ("FAILED", error)
    document = json.loads(described["input"])
    prefix = naming.quarantine_prefix(document["batch_id"], described["name"])
    processed = pipeline.aws.client("s3")
    report = json.loads(
        processed.get_object(Bucket=pipeline.outputs.processed_bucket, Key=f"{prefix}error.json")[
            "Body"
        ].read()
    )
    assert (report["error"], report["source"]["key"]) == (error, key)
    # ... and operators get a message naming it
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10)["Messages"]
    notice = json.loads(json.loads(messages[0]["Body"])["Message"])
    assert (notice["key"], notice["error"]) == (key, error)


def test_a_multipart_upload_starts_one_run(pipeline: LocalPipeline, tmp_path: Any) -> None:
    # Given a file above the multipart threshold of the uploading client
    rows = 120_000
    body = _orders(8300, rows)
    assert len(body) > 6 * 1024**2
    sfn = pipeline.aws.client("stepfunctions")
    before = execution_arns(sfn, pipeline.outputs.state_machine_arn)
    # When it is uploaded in parts
    config = TransferConfig(multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2)
    _s3(pipeline).upload_fileobj(
        io.BytesIO(body), pipeline.outputs.input_bucket, "incoming/big.csv", Config=config
    )
    # Then exactly one execution started for it, and it published the whole file
    arn = wait_for_execution(
        sfn, pipeline.outputs.state_machine_arn, "incoming/big.csv", before, timeout=60
    )
    described = _finish(pipeline, arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert _executions_for(pipeline, "incoming/big.csv", set(before)) == [arn]
    assert _client_totals(pipeline, 8300)["orders"] == rows
