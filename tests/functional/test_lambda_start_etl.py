"""start_etl against moto: one execution per new .csv object, duplicates and noise ignored."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from duffbeer import aws, naming
from duffbeer.errors import ExecutionStartError
from lambdas.start_etl import handler as start_etl_handler
from lambdas.start_etl.trigger import SkipReason, input_objects, start_executions
from tests.events.invocation import LambdaContextStub, load_event

pytestmark = pytest.mark.functional

INPUT_BUCKET = "duffbeer-input-orders"
PASS_DEFINITION = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}})


@pytest.fixture
def sfn() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("stepfunctions", region_name="us-east-1")


@pytest.fixture
def state_machine_arn(sfn: Any) -> str:
    response = sfn.create_state_machine(
        name="duffbeer-orders-etl",
        definition=PASS_DEFINITION,
        roleArn="arn:aws:iam::123456789012:role/duffbeer-orders-etl-states",
    )
    arn: str = response["stateMachineArn"]
    return arn


@pytest.fixture
def fresh_handler_state() -> Iterator[None]:
    """Handlers cache their config and duffbeer.aws caches clients built inside mock_aws:
    clear both around a handler test so that no other test inherits them."""
    start_etl_handler.config.cache_clear()
    aws.client.cache_clear()
    yield
    start_etl_handler.logger.clear_state()
    start_etl_handler.config.cache_clear()
    aws.client.cache_clear()


def _executions(sfn: Any, arn: str) -> dict[str, dict[str, Any]]:
    """Execution name -> parsed input, for every execution of the state machine."""
    result = {}
    for execution in sfn.list_executions(stateMachineArn=arn)["executions"]:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        result[execution["name"]] = json.loads(described["input"])
    return result


def test_single_record_starts_one_execution_with_the_documented_input(
    sfn: Any, state_machine_arn: str
) -> None:
    # Given a single-record ObjectCreated event
    event = load_event("s3_put_single")
    key = "incoming/orders-2026-11-28.csv"
    batch_id = naming.batch_id_for(INPUT_BUCKET, key)

    # When start_etl handles it
    summary = start_executions(
        input_objects(event), state_machine_arn=state_machine_arn, client=sfn
    )

    # Then one execution runs, named after the object's identity, with the documented input
    name = naming.execution_name_for(
        batch_id, "b21c4b1fcdb0b2ca3a6e3e5b1f4b4d5e:0062A4F0C4D2F1E8A1"
    )
    assert summary.as_dict() == {"started": [name], "duplicates": [], "skipped": {}, "failed": {}}
    assert _executions(sfn, state_machine_arn) == {
        name: {
            "bucket": INPUT_BUCKET,
            "key": key,
            "etag": "b21c4b1fcdb0b2ca3a6e3e5b1f4b4d5e",
            "version_id": None,
            "size": 412,
            "event_time": "2026-11-28T08:00:00.000Z",
            "batch_id": batch_id,
            "sequencer": "0062A4F0C4D2F1E8A1",
        }
    }
    assert len(name) <= 80


def test_duplicate_delivery_while_running_starts_one_execution(
    sfn: Any, state_machine_arn: str
) -> None:
    # Given an event that was already delivered once and whose execution still runs
    event = load_event("s3_put_single")
    start_executions(input_objects(event), state_machine_arn=state_machine_arn, client=sfn)

    # When S3 delivers the same event again
    start_executions(input_objects(event), state_machine_arn=state_machine_arn, client=sfn)

    # Then Step Functions still holds exactly one execution
    assert len(_executions(sfn, state_machine_arn)) == 1


def test_duplicate_delivery_after_the_run_ended_is_logged_not_raised(
    sfn: Any, state_machine_arn: str
) -> None:
    # Given an event whose execution already finished
    event = load_event("s3_put_single")
    first = start_executions(input_objects(event), state_machine_arn=state_machine_arn, client=sfn)
    execution_arn = (
        f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{first.started[0]}"
    )
    sfn.stop_execution(executionArn=execution_arn)

    # When S3 delivers it again
    again = start_executions(input_objects(event), state_machine_arn=state_machine_arn, client=sfn)

    # Then the delivery counts as a duplicate and no new execution exists
    assert again.as_dict() == {
        "started": [],
        "duplicates": first.started,
        "skipped": {},
        "failed": {},
    }
    assert list(_executions(sfn, state_machine_arn)) == first.started


def test_multi_record_event_starts_one_execution_per_object(
    sfn: Any, state_machine_arn: str
) -> None:
    # Given one notification carrying three records: .csv, .CSV and a .txt file
    event = load_event("s3_put_multi_record")

    # When start_etl handles it
    summary = start_executions(
        input_objects(event), state_machine_arn=state_machine_arn, client=sfn
    )

    # Then every object starts an execution: the .txt file fails visibly in validation
    started = _executions(sfn, state_machine_arn)
    assert sorted(execution["key"] for execution in started.values()) == [
        "incoming/pos-b2b.CSV",
        "incoming/pos-retail.csv",
        "incoming/readme.txt",
    ]
    assert sorted(summary.started) == sorted(started)
    assert summary.skipped == {}


def test_percent_encoded_key_is_unquoted_before_use(sfn: Any, state_machine_arn: str) -> None:
    # Given an event whose key S3 percent-encoded (spaces as '+', quotes, non-ASCII)
    event = load_event("s3_put_encoded_key")

    # When start_etl handles it
    start_executions(input_objects(event), state_machine_arn=state_machine_arn, client=sfn)

    # Then the execution receives the real key
    (execution,) = _executions(sfn, state_machine_arn).values()
    assert execution["key"] == "incoming/Moe's Tavern/orders (week 48)+ñ.csv"
    assert execution["batch_id"] == naming.batch_id_for(INPUT_BUCKET, execution["key"])


@pytest.mark.parametrize("sample", ["s3_put_non_csv", "s3_put_empty_object"])
def test_an_odd_upload_still_starts_an_execution(
    sfn: Any, state_machine_arn: str, sample: str
) -> None:
    # Given an upload that is not a CSV, or is empty: it must not vanish with a log line
    objects = input_objects(load_event(sample))

    # When start_etl handles it / Then it starts an execution (validation will quarantine it)
    summary = start_executions(objects, state_machine_arn=state_machine_arn, client=sfn)
    assert (len(summary.started), summary.skipped) == (1, {})


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ("s3_put_folder_marker", SkipReason.FOLDER_MARKER),
        ("s3_copy_quarantine_prefix", SkipReason.PIPELINE_PREFIX),
    ],
)
def test_objects_that_are_not_batches_start_nothing(
    sfn: Any, state_machine_arn: str, sample: str, reason: SkipReason
) -> None:
    # Given an event for an object that is not an orders file
    objects = input_objects(load_event(sample))

    # When start_etl handles it
    summary = start_executions(objects, state_machine_arn=state_machine_arn, client=sfn)

    # Then nothing starts and the reason is recorded
    assert summary.started == []
    assert list(summary.skipped.values()) == [reason]
    assert _executions(sfn, state_machine_arn) == {}


def test_versioned_object_is_named_by_its_version(sfn: Any, state_machine_arn: str) -> None:
    # Given the same key delivered unversioned and then as a versioned object
    unversioned = input_objects(load_event("s3_put_single"))
    versioned = input_objects(load_event("s3_put_versioned"))

    # When both are handled
    start_executions(unversioned, state_machine_arn=state_machine_arn, client=sfn)
    start_executions(versioned, state_machine_arn=state_machine_arn, client=sfn)

    # Then they are two runs of the same batch, the second carrying its version id
    executions = list(_executions(sfn, state_machine_arn).values())
    assert len(executions) == 2
    assert {e["batch_id"] for e in executions} == {unversioned[0].batch_id}
    assert sorted(str(e["version_id"]) for e in executions) == [
        "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        "None",
    ]


def test_a_failed_start_is_raised_after_every_record_was_tried(sfn: Any) -> None:
    # Given a state machine ARN that does not exist
    missing = "arn:aws:states:us-east-1:123456789012:stateMachine:missing"

    # When a two-csv event is handled
    with pytest.raises(ExecutionStartError) as raised:
        start_executions(
            input_objects(load_event("s3_put_multi_record")), state_machine_arn=missing, client=sfn
        )

    # Then the error names both objects, so the Lambda retry covers both
    message = str(raised.value)
    assert "incoming/pos-retail.csv" in message
    assert "incoming/pos-b2b.CSV" in message
    assert "StateMachineDoesNotExist" in message


def test_s3_test_event_has_no_records() -> None:
    # Given the s3:TestEvent S3 sends when a notification is configured
    # When it is parsed / Then it yields no objects
    assert input_objects(load_event("s3_test_event")) == []


def test_handler_logs_batch_and_execution_on_the_start_line(
    sfn: Any,
    state_machine_arn: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    fresh_handler_state: None,
) -> None:
    # Given the function's environment
    monkeypatch.setenv("STATE_MACHINE_ARN", state_machine_arn)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "start_etl")

    # When the handler receives a single-record event
    log_handler = start_etl_handler.logger.registered_handler
    original_stream = log_handler.setStream(io.StringIO())
    try:
        result = start_etl_handler.handler(load_event("s3_put_single"), LambdaContextStub())
        logged = log_handler.stream.getvalue()
    finally:
        log_handler.setStream(original_stream)

    # Then it reports the start, and the log line carries batch id and execution name
    assert len(result["started"]) == 1
    lines = [json.loads(line) for line in logged.splitlines()]
    started = [line for line in lines if line.get("message") == "Started execution"]
    assert [(line["batch_id"], line["execution_name"]) for line in started] == [
        (naming.batch_id_for(INPUT_BUCKET, "incoming/orders-2026-11-28.csv"), result["started"][0])
    ]
    (emf,) = [json.loads(line) for line in capfd.readouterr().out.splitlines() if "_aws" in line]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "DuffBeerOrders"
    assert (emf["RecordsReceived"], emf["ExecutionsStarted"], emf["DuplicateDeliveries"]) == (
        [1.0],
        [1.0],
        [0.0],
    )
