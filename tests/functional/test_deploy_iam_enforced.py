"""Each deployed role, assumed with moto's IAM enforcement on: allowed its job, denied the rest."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.glue.responses import GlueResponse

from deploy.create_workflow import deploy
from deploy.stack import DeployOptions
from duffbeer import history, naming, state
from lambdas.api.batches import BatchHistory
from lambdas.api.publications import read_publications

pytestmark = pytest.mark.functional

REGION = "us-east-1"
ACCOUNT = "123456789012"
INPUT = "duffbeer-input-orders"
PROCESSED = "duffbeer-processed-orders"
DATABASE = naming.DATABASE
# The state's Iceberg tables: files under warehouse/<database>.db/<table>/, one Glue table each.
STATE_TABLE = state.PRODUCT_DAILY_TABLE
MISSING_STATE_TABLE = state.CLIENT_ORDERS_TABLE
PUBLICATIONS_TABLE = state.PUBLICATIONS_TABLE
TABLES_PREFIX = f"{naming.WAREHOUSE_PREFIX}{DATABASE}.db/"
PUBLICATIONS_METADATA_KEY = f"{TABLES_PREFIX}{PUBLICATIONS_TABLE}/metadata/00001-a.metadata.json"
STATE_METADATA_KEY = f"{TABLES_PREFIX}{STATE_TABLE}/metadata/00001-b.metadata.json"
# Tables of the same database that are not the state's: a batch-history table the deploy
# created (the catalog step's), and a name no step uses.
BATCH_TABLE = naming.BATCH_REPORT_TABLES[naming.CLIENT_SALES_REPORT]
OTHER_TABLE = "not_a_state_table"

# One publication, as the state job's commit to the publications table records it.
PUBLISHED = state.Publication(
    seq=1,
    published_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
    kind=state.KIND_MERGE,
    snapshots={STATE_TABLE: 11},
    merged={"orders-1": "run-1"},
)
PUBLICATIONS_METADATA = {
    "format-version": 2,
    "location": f"s3://{PROCESSED}/{TABLES_PREFIX}{PUBLICATIONS_TABLE}",
    "current-snapshot-id": 12,
    "snapshots": [
        {
            "snapshot-id": 12,
            "timestamp-ms": int(PUBLISHED.published_at.timestamp() * 1000),
            "summary": {"operation": "append", **PUBLISHED.summary()},
        }
    ],
}

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
    # The run index's entries of both runs (as PublishBatch and QuarantineInput record them).
    (PROCESSED, history.entry_key("orders-1", "run-1", datetime(2026, 3, 1, tzinfo=UTC))): b"{}",
    (PROCESSED, history.entry_key("orders-2", "run-1", datetime(2026, 3, 2, tzinfo=UTC))): b"{}",
    (PROCESSED, f"{TABLES_PREFIX}{STATE_TABLE}/data/00000-0-a.parquet"): b"PAR1",
    (PROCESSED, STATE_METADATA_KEY): b"{}",
    (PROCESSED, PUBLICATIONS_METADATA_KEY): json.dumps(PUBLICATIONS_METADATA).encode(),
}

Session = dict[str, Any]


def _post(url: str, body: bytes = b"") -> None:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request).read()


def _iceberg_table_input(table: str, metadata_key: str) -> dict[str, Any]:
    """A state table as Iceberg's GlueCatalog registers it: a pointer to its metadata file."""
    return {
        "Name": table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "table_type": "ICEBERG",
            "metadata_location": f"s3://{PROCESSED}/{metadata_key}",
        },
        "StorageDescriptor": {"Location": f"s3://{PROCESSED}/{TABLES_PREFIX}{table}"},
    }


def _glue_resource(response: GlueResponse) -> str:
    """The ARN AWS authorizes a Glue table (or database) call on.

    moto 5.2.5 authorizes every non-S3 call on the resource "*", which no resource-scoped
    statement matches: every Glue call of the stack's roles would be denied, allowed or not.
    (AWS also checks the catalog and database ARNs of a table call: tests/unit/test_deploy_iam.)
    """
    try:
        params = json.loads(response.body or "{}")
    except ValueError:
        return "*"
    prefix = f"arn:{response.partition}:glue:{response.region}:{response.current_account}"
    database = params.get("DatabaseName")
    table = (
        params.get("Name") or params.get("TableName") or params.get("TableInput", {}).get("Name")
    )
    if database and table:
        return f"{prefix}:table/{database}/{table}"
    if database:
        return f"{prefix}:database/{database}"
    return "*"


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
    # The state job has created (and committed to) one state table and the publications.
    glue = boto3.client("glue", region_name=REGION, endpoint_url=endpoint)
    glue.create_table(
        DatabaseName=DATABASE, TableInput=_iceberg_table_input(STATE_TABLE, STATE_METADATA_KEY)
    )
    glue.create_table(
        DatabaseName=DATABASE,
        TableInput=_iceberg_table_input(PUBLICATIONS_TABLE, PUBLICATIONS_METADATA_KEY),
    )
    sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint)
    sessions = {}
    for role in (
        "start-etl",
        "validate-orders",
        "publish-batch",
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
    # From here on every request must be signed by an identity whose policies allow it, and a
    # Glue table call is authorized on the table's ARN (the server runs in this process).
    assert not hasattr(GlueResponse, "_determine_resource"), "moto scopes Glue calls itself now"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GlueResponse, "_determine_resource", _glue_resource, raising=False)
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


def _list(prefix: str) -> Callable[[Any], Any]:
    bucket, _, name = prefix.partition("/")
    return lambda s3: s3.list_objects_v2(Bucket=bucket, Prefix=name)


INPUT_CSV = f"{INPUT}/incoming/orders.csv"
MANIFEST = f"{PROCESSED}/manifests/orders-1.json"
RUN_FILE = f"{PROCESSED}/runs/orders-1/run-1/order_lines/part-0.parquet"
RUN_INPUT = f"{PROCESSED}/runs/orders-1/run-1/input/source.csv"
WAREHOUSE = f"{PROCESSED}/{naming.WAREHOUSE_PREFIX}"
STATE_DATA = f"{PROCESSED}/{TABLES_PREFIX}{STATE_TABLE}/data/00000-0-a.parquet"
NEW_STATE_DATA = f"{PROCESSED}/{TABLES_PREFIX}{STATE_TABLE}/data/00001-0-b.parquet"
NEW_STATE_METADATA = f"{PROCESSED}/{TABLES_PREFIX}{STATE_TABLE}/metadata/00002-c.metadata.json"
PUBLICATIONS_METADATA_FILE = f"{PROCESSED}/{PUBLICATIONS_METADATA_KEY}"
HISTORY_ENTRY = f"{PROCESSED}/{history.entry_key('b', 'r', datetime(2026, 3, 3, tzinfo=UTC))}"

# moto evaluates no StringLike condition: listing is checked per bucket, not per s3:prefix
# (the prefixes are checked in tests/unit/test_deploy_iam.py).
CASES = [
    # (role, what, call, allowed)
    ("validate-orders", "reads its input", _get(INPUT_CSV), True),
    ("validate-orders", "copies its input to the run", _put(RUN_INPUT), True),
    ("validate-orders", "cannot write run outputs", _put(f"{PROCESSED}/runs/b/r/x"), False),
    ("validate-orders", "cannot write the input bucket", _put(f"{INPUT}/x.csv"), False),
    ("validate-orders", "cannot write the warehouse", _put(NEW_STATE_DATA), False),
    ("orders-api", "reads the publications' metadata", _get(PUBLICATIONS_METADATA_FILE), True),
    ("orders-api", "reads the state's files (for Athena)", _get(STATE_DATA), True),
    ("orders-api", "lists the warehouse", _list(WAREHOUSE), True),
    ("orders-api", "lists Athena results", _list(f"{PROCESSED}/athena-results/"), True),
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
    ("orders-api", "cannot write the history", _put(HISTORY_ENTRY), False),
    ("orders-api", "cannot write state data", _put(NEW_STATE_DATA), False),
    ("orders-api", "cannot write state metadata", _put(NEW_STATE_METADATA), False),
    ("orders-api", "cannot delete the state's files", _delete(STATE_DATA), False),
    ("orders-api", "cannot list the input bucket", _list(f"{INPUT}/"), False),
    ("quarantine-batch", "reads the failed input", _get(INPUT_CSV), True),
    ("quarantine-batch", "writes quarantine", _put(f"{PROCESSED}/quarantine/b/r/x.csv"), True),
    ("quarantine-batch", "records the run's history", _put(HISTORY_ENTRY), True),
    ("quarantine-batch", "cannot write runs", _put(f"{PROCESSED}/runs/b/r/x"), False),
    ("quarantine-batch", "cannot write the warehouse", _put(NEW_STATE_DATA), False),
    ("publish-batch", "reads manifests", _get(MANIFEST), True),
    ("publish-batch", "writes batch pointers", _put(MANIFEST), True),
    ("publish-batch", "records the run's history", _put(HISTORY_ENTRY), True),
    ("publish-batch", "cannot delete the history", _delete(HISTORY_ENTRY), False),
    ("publish-batch", "cannot delete runs", _delete(RUN_FILE), False),
    ("publish-batch", "cannot read the state", _get(PUBLICATIONS_METADATA_FILE), False),
    ("publish-batch", "cannot write the state", _put(NEW_STATE_METADATA), False),
    ("catalog-batch", "reads manifests", _get(MANIFEST), True),
    ("catalog-batch", "cannot read the input", _get(INPUT_CSV), False),
    ("catalog-batch", "cannot read the state", _get(PUBLICATIONS_METADATA_FILE), False),
    ("catalog-batch", "cannot write the state", _put(NEW_STATE_DATA), False),
    ("catalog-batch", "cannot delete the state's files", _delete(STATE_DATA), False),
    ("clean-up", "deletes superseded runs", _delete(f"{PROCESSED}/runs/old/r/x"), True),
    ("clean-up", "deletes their history entries", _delete(HISTORY_ENTRY), True),
    ("clean-up", "reads batch pointers", _get(MANIFEST), True),
    ("clean-up", "cannot delete a batch pointer", _delete(MANIFEST), False),
    ("clean-up", "cannot delete the state's data", _delete(STATE_DATA), False),
    ("clean-up", "cannot delete the state's metadata", _delete(PUBLICATIONS_METADATA_FILE), False),
    ("glue", "reads the run's input copy", _get(RUN_INPUT), True),
    ("glue", "writes runs", _put(f"{PROCESSED}/runs/orders-1/run-2/x"), True),
    ("glue", "cannot read the input bucket", _get(INPUT_CSV), False),
    ("glue", "cannot write manifests", _put(f"{PROCESSED}/manifests/orders-2.json"), False),
    ("glue", "cannot write the input bucket", _put(f"{INPUT}/x.csv"), False),
    ("glue", "cannot write quarantine", _put(f"{PROCESSED}/quarantine/x"), False),
    ("glue", "cannot write the history", _put(HISTORY_ENTRY), False),
    ("glue", "cannot write the warehouse", _put(NEW_STATE_DATA), False),
    ("glue", "cannot read the warehouse", _get(STATE_DATA), False),
    ("state-job", "reads published runs", _get(RUN_FILE), True),
    ("state-job", "reads batch pointers", _get(MANIFEST), True),
    ("state-job", "lists the warehouse", _list(WAREHOUSE), True),
    ("state-job", "reads the state's data", _get(STATE_DATA), True),
    ("state-job", "reads the publications' metadata", _get(PUBLICATIONS_METADATA_FILE), True),
    ("state-job", "writes new data files", _put(NEW_STATE_DATA), True),
    ("state-job", "writes new metadata files", _put(NEW_STATE_METADATA), True),
    # A failed commit's own files, and the upkeep job's expired and orphan files.
    ("state-job", "deletes files under the warehouse", _delete(NEW_STATE_DATA), True),
    ("state-job", "cannot write batch pointers", _put(MANIFEST), False),
    ("state-job", "cannot write runs", _put(f"{PROCESSED}/runs/orders-1/run-2/x"), False),
    ("state-job", "cannot delete runs", _delete(RUN_FILE), False),
    ("state-job", "cannot delete batch pointers", _delete(MANIFEST), False),
    ("state-job", "cannot write quarantine", _put(f"{PROCESSED}/quarantine/x"), False),
    ("state-job", "cannot read the input bucket", _get(INPUT_CSV), False),
    ("start-etl", "cannot read order files", _get(INPUT_CSV), False),
    ("start-etl", "cannot read the state", _get(PUBLICATIONS_METADATA_FILE), False),
    ("states", "cannot read order files", _get(INPUT_CSV), False),
    ("states", "cannot write the state", _put(NEW_STATE_METADATA), False),
]


def _get_table(table: str) -> Callable[[Any], Any]:
    return lambda glue: glue.get_table(DatabaseName=DATABASE, Name=table)


def _commit(table: str, metadata_key: str) -> Callable[[Any], Any]:
    """An Iceberg commit's catalog half: point the table at its new metadata file."""
    return lambda glue: glue.update_table(
        DatabaseName=DATABASE, TableInput=_iceberg_table_input(table, metadata_key)
    )


def _create_table(table: str) -> Callable[[Any], Any]:
    return lambda glue: glue.create_table(
        DatabaseName=DATABASE,
        TableInput=_iceberg_table_input(table, f"{TABLES_PREFIX}{table}/metadata/00000-d.json"),
    )


def _delete_table(table: str) -> Callable[[Any], Any]:
    return lambda glue: glue.delete_table(DatabaseName=DATABASE, Name=table)


GLUE_CASES = [
    # (role, what, call, allowed)
    ("state-job", "reads a state table", _get_table(STATE_TABLE), True),
    ("state-job", "commits to a state table", _commit(STATE_TABLE, STATE_METADATA_KEY), True),
    (
        "state-job",
        "commits to the publications table",
        _commit(PUBLICATIONS_TABLE, PUBLICATIONS_METADATA_KEY),
        True,
    ),
    ("state-job", "creates a missing state table", _create_table(MISSING_STATE_TABLE), True),
    (
        "state-job",
        "cannot update a batch-history table",
        _commit(BATCH_TABLE, STATE_METADATA_KEY),
        False,
    ),
    ("state-job", "cannot read a batch-history table", _get_table(BATCH_TABLE), False),
    ("state-job", "cannot create another table", _create_table(OTHER_TABLE), False),
    ("state-job", "cannot drop a state table", _delete_table(STATE_TABLE), False),
    ("orders-api", "reads the publications table", _get_table(PUBLICATIONS_TABLE), True),
    ("orders-api", "reads a state table", _get_table(STATE_TABLE), True),
    ("orders-api", "reads a batch-history table", _get_table(BATCH_TABLE), True),
    (
        "orders-api",
        "cannot commit to the publications table",
        _commit(PUBLICATIONS_TABLE, PUBLICATIONS_METADATA_KEY),
        False,
    ),
    ("orders-api", "cannot drop a state table", _delete_table(STATE_TABLE), False),
    ("catalog-batch", "reads a batch-history table", _get_table(BATCH_TABLE), True),
    (
        "catalog-batch",
        "cannot commit to a state table",
        _commit(STATE_TABLE, STATE_METADATA_KEY),
        False,
    ),
    (
        "catalog-batch",
        "cannot commit to the publications table",
        _commit(PUBLICATIONS_TABLE, PUBLICATIONS_METADATA_KEY),
        False,
    ),
    ("glue", "cannot read a state table", _get_table(STATE_TABLE), False),
    (
        "glue",
        "cannot commit to a state table",
        _commit(STATE_TABLE, STATE_METADATA_KEY),
        False,
    ),
    ("clean-up", "cannot drop a state table", _delete_table(STATE_TABLE), False),
    ("clean-up", "cannot read the catalog", _get_table(PUBLICATIONS_TABLE), False),
]


def _assert_outcome(call: Callable[[Any], Any], client: Any, allowed: bool) -> None:
    if allowed:
        call(client)
    else:
        with pytest.raises(ClientError) as raised:
            call(client)
        assert raised.value.response["Error"]["Code"] in {"AccessDenied", "403"}


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
    _assert_outcome(call, s3, allowed)


@pytest.mark.parametrize(
    ("role", "what", "call", "allowed"),
    GLUE_CASES,
    ids=[f"{role}: {what}" for role, what, _, _ in GLUE_CASES],
)
def test_role_reads_and_commits_exactly_its_catalog_tables(
    roles: tuple[str, dict[str, Session]],
    role: str,
    what: str,
    call: Callable[[Any], Any],
    allowed: bool,
) -> None:
    endpoint, sessions = roles
    glue = boto3.client("glue", region_name=REGION, endpoint_url=endpoint, **sessions[role])
    _assert_outcome(call, glue, allowed)


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
        glue.delete_database(Name=DATABASE)


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


def test_the_api_role_reads_the_publications_as_the_reports_do(
    roles: tuple[str, dict[str, Session]],
) -> None:
    # Given the API role's credentials and a publications table committed by the state job
    endpoint, sessions = roles
    api = sessions["orders-api"]
    glue = boto3.client("glue", region_name=REGION, endpoint_url=endpoint, **api)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint, **api)
    # When the API reads the publications (Glue GetTable, then the metadata file it names)
    published = read_publications(glue, s3, DATABASE)
    # Then it finds the one publication and the snapshot it pins
    assert published == [PUBLISHED]
