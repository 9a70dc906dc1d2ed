"""Each deployed role, assumed with moto's IAM enforcement on: allowed its job, denied the rest."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from deploy.create_workflow import deploy
from deploy.stack import DeployOptions
from lambdas.api.batches import BatchHistory

pytestmark = pytest.mark.functional

REGION = "us-east-1"
ACCOUNT = "123456789012"
INPUT = "duffbeer-input-orders"
PROCESSED = "duffbeer-processed-orders"
SEEDED = {
    (INPUT, "incoming/orders.csv"): b"client_id,client_name\n",
    (PROCESSED, "manifests/orders-1.json"): b"{}",
    (PROCESSED, "runs/orders-1/run-1/order_lines/part-0.parquet"): b"PAR1",
    (PROCESSED, "runs/orders-1/run-1/input/source.csv"): b"client_id,client_name\n",
    (PROCESSED, "runs/orders-1/run-1/_manifest.json"): (
        b'{"batch_id": "orders-1", "run_id": "run-1", "status": "SUCCEEDED", "rows_read": 3}'
    ),
    (PROCESSED, "quarantine/orders-2/run-1/error.json"): (
        b'{"reason": "DelimiterError", "message": "the header is delimited by \';\'"}'
    ),
    (PROCESSED, "state/current.json"): b"{}",
    (PROCESSED, "state/versions/0000000001-0a1b2c3d/product_daily/part-0.parquet"): b"PAR1",
}

Session = dict[str, Any]


def _post(url: str, body: bytes = b"") -> None:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request).read()


@pytest.fixture(scope="module")
def roles(
    _moto_server_session: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Session]]]:
    """The deployed stack's roles as credentials, with IAM enforcement switched on."""
    endpoint = _moto_server_session
    _post(f"{endpoint}/moto-api/reset")
    deploy(
        DeployOptions(region=REGION, endpoint_url=endpoint, build_dir=tmp_path_factory.mktemp("b")),
        out=io.StringIO(),
    )
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    for (bucket, key), body in SEEDED.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint)
    sessions = {}
    for role in (
        "start-etl",
        "validate-orders",
        "publish-batch",
        "plan-state",
        "publish-state",
        "catalog-batch",
        "clean-up",
        "quarantine-batch",
        "orders-api",
        "glue",
        "state-job",
        "states",
    ):
        credentials = sts.assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/duffbeer-{role}-role", RoleSessionName="test"
        )["Credentials"]
        sessions[role] = {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
    # From here on every request must be signed by an identity whose policies allow it.
    _post(f"{endpoint}/moto-api/reset-auth", b"0")
    try:
        yield endpoint, sessions
    finally:
        _post(f"{endpoint}/moto-api/reset-auth", b"inf")
        _post(f"{endpoint}/moto-api/reset")


def _put(key: str) -> Callable[[Any], Any]:
    bucket, _, name = key.partition("/")
    return lambda s3: s3.put_object(Bucket=bucket, Key=name, Body=b"x")


def _get(key: str) -> Callable[[Any], Any]:
    bucket, _, name = key.partition("/")
    return lambda s3: s3.get_object(Bucket=bucket, Key=name)


def _delete(key: str) -> Callable[[Any], Any]:
    bucket, _, name = key.partition("/")
    return lambda s3: s3.delete_object(Bucket=bucket, Key=name)


INPUT_CSV = f"{INPUT}/incoming/orders.csv"
MANIFEST = f"{PROCESSED}/manifests/orders-1.json"
RUN_FILE = f"{PROCESSED}/runs/orders-1/run-1/order_lines/part-0.parquet"
RUN_INPUT = f"{PROCESSED}/runs/orders-1/run-1/input/source.csv"
POINTER = f"{PROCESSED}/state/current.json"
STATE_FILE = f"{PROCESSED}/state/versions/0000000001-0a1b2c3d/product_daily/part-0.parquet"
NEW_VERSION_FILE = f"{PROCESSED}/state/versions/0000000002-0a1b2c3d/product_daily/part-0.parquet"
PLAN = f"{PROCESSED}/state/plans/0000000002-0a1b2c3d.json"

CASES = [
    # (role, what, call, allowed)
    ("validate-orders", "reads its input", _get(INPUT_CSV), True),
    ("validate-orders", "copies its input to the run", _put(RUN_INPUT), True),
    ("validate-orders", "cannot write run outputs", _put(f"{PROCESSED}/runs/b/r/x"), False),
    ("validate-orders", "cannot write the input bucket", _put(f"{INPUT}/x.csv"), False),
    ("orders-api", "reads the state pointer", _get(POINTER), True),
    ("orders-api", "reads the published state", _get(STATE_FILE), True),
    ("orders-api", "writes Athena results", _put(f"{PROCESSED}/athena-results/q.csv"), True),
    (
        "orders-api",
        "reads run manifests",
        _get(f"{PROCESSED}/runs/orders-1/run-1/_manifest.json"),
        True,
    ),
    (
        "orders-api",
        "reads quarantine reports",
        _get(f"{PROCESSED}/quarantine/orders-2/run-1/error.json"),
        True,
    ),
    ("orders-api", "reads batch pointers", _get(MANIFEST), True),
    ("orders-api", "cannot read run data", _get(RUN_FILE), False),
    ("orders-api", "cannot read a run's input", _get(RUN_INPUT), False),
    ("orders-api", "cannot write the input bucket", _put(f"{INPUT}/x.csv"), False),
    ("orders-api", "cannot write runs", _put(f"{PROCESSED}/runs/orders-1/x"), False),
    ("orders-api", "cannot move the state pointer", _put(POINTER), False),
    ("orders-api", "cannot delete data", _delete(STATE_FILE), False),
    ("quarantine-batch", "reads the failed input", _get(INPUT_CSV), True),
    ("quarantine-batch", "writes quarantine", _put(f"{PROCESSED}/quarantine/b/r/x.csv"), True),
    ("quarantine-batch", "cannot write runs", _put(f"{PROCESSED}/runs/b/r/x"), False),
    ("publish-batch", "reads manifests", _get(MANIFEST), True),
    ("publish-batch", "writes batch pointers", _put(MANIFEST), True),
    ("publish-batch", "cannot delete runs", _delete(RUN_FILE), False),
    ("publish-batch", "cannot move the state pointer", _put(POINTER), False),
    ("plan-state", "reads the state pointer", _get(POINTER), True),
    ("plan-state", "writes plans", _put(PLAN), True),
    ("plan-state", "cannot move the state pointer", _put(POINTER), False),
    ("publish-state", "moves the state pointer", _put(POINTER), True),
    ("publish-state", "cannot write state data", _put(NEW_VERSION_FILE), False),
    ("publish-state", "cannot write batch pointers", _put(MANIFEST), False),
    ("catalog-batch", "reads manifests", _get(MANIFEST), True),
    ("catalog-batch", "reads the state pointer", _get(POINTER), True),
    ("catalog-batch", "cannot read the input", _get(INPUT_CSV), False),
    ("clean-up", "deletes superseded runs", _delete(f"{PROCESSED}/runs/old/r/x"), True),
    ("clean-up", "deletes old state versions", _delete(f"{PROCESSED}/state/versions/v/x"), True),
    ("clean-up", "cannot delete a batch pointer", _delete(MANIFEST), False),
    ("clean-up", "cannot delete the state pointer", _delete(POINTER), False),
    ("glue", "reads the run's input copy", _get(RUN_INPUT), True),
    ("glue", "writes runs", _put(f"{PROCESSED}/runs/orders-1/run-2/x"), True),
    ("glue", "cannot read the input bucket", _get(INPUT_CSV), False),
    ("glue", "cannot write manifests", _put(f"{PROCESSED}/manifests/orders-2.json"), False),
    ("glue", "cannot write the input bucket", _put(f"{INPUT}/x.csv"), False),
    ("glue", "cannot write quarantine", _put(f"{PROCESSED}/quarantine/x"), False),
    ("state-job", "reads published runs", _get(RUN_FILE), True),
    ("state-job", "reads the state", _get(STATE_FILE), True),
    ("state-job", "writes new versions", _put(NEW_VERSION_FILE), True),
    ("state-job", "cannot move the state pointer", _put(POINTER), False),
    ("state-job", "cannot write batch pointers", _put(MANIFEST), False),
    ("start-etl", "cannot read order files", _get(INPUT_CSV), False),
    ("states", "cannot read order files", _get(INPUT_CSV), False),
]


@pytest.mark.parametrize(
    ("role", "what", "call", "allowed"),
    CASES,
    ids=[f"{role}: {what}" for role, what, _, _ in CASES],
)
def test_role_can_do_its_job_and_nothing_else(
    roles: tuple[str, dict[str, Session]],
    role: str,
    what: str,
    call: Callable[[Any], Any],
    allowed: bool,
) -> None:
    endpoint, sessions = roles
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint, **sessions[role])
    if allowed:
        call(s3)
    else:
        with pytest.raises(ClientError) as raised:
            call(s3)
        assert raised.value.response["Error"]["Code"] in {"AccessDenied", "403"}


def test_the_api_role_cannot_start_executions_or_change_the_catalog(
    roles: tuple[str, dict[str, Session]],
) -> None:
    endpoint, sessions = roles
    api = sessions["orders-api"]
    sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=endpoint, **api)
    glue = boto3.client("glue", region_name=REGION, endpoint_url=endpoint, **api)
    with pytest.raises(ClientError, match="AccessDenied"):
        sfn.start_execution(
            stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:duffbeer-orders-etl",
            name="not-allowed",
            input="{}",
        )
    with pytest.raises(ClientError, match="AccessDenied"):
        glue.delete_database(Name="duffbeer_reports")


def test_the_api_role_reads_the_batch_history_as_get_batches_does(
    roles: tuple[str, dict[str, Session]],
) -> None:
    endpoint, sessions = roles
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint, **sessions["orders-api"])
    page = BatchHistory(PROCESSED, s3).page()
    assert sorted((run["batch_id"], run["status"]) for run in page["items"]) == [
        ("orders-1", "PENDING"),
        ("orders-2", "FAILED"),
    ]
