"""Pure parts of the pipeline Lambdas: configuration, event parsing, error explanation."""

from __future__ import annotations

import importlib
import json
import re

import pytest

from duffbeer.errors import ConfigurationError, InvalidParameterError, InvalidPayloadError
from lambdas.catalog_batch.config import CatalogConfig
from lambdas.publish_batch.config import PublishConfig
from lambdas.quarantine_batch.config import QuarantineConfig
from lambdas.quarantine_batch.quarantine import explain
from lambdas.start_etl.config import StartEtlConfig
from lambdas.start_etl.trigger import SkipReason, input_objects, skip_reason
from lambdas.validate_orders.checks import ingest_date_of
from lambdas.validate_orders.config import ValidateConfig
from tests.events.invocation import LambdaContextStub, load_event

SM_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:duffbeer-orders-etl"


def test_configs_read_their_environment() -> None:
    env = {
        "STATE_MACHINE_ARN": SM_ARN,
        "MAX_FILE_BYTES": "1048576",
        "PROCESSED_BUCKET": "acme-duffbeer-processed-orders",
        "GLUE_DATABASE": "acme_reports",
    }
    assert StartEtlConfig.from_env(env) == StartEtlConfig(state_machine_arn=SM_ARN)
    assert ValidateConfig.from_env(env).max_file_bytes == 1_048_576
    assert PublishConfig.from_env(env).processed_bucket == "acme-duffbeer-processed-orders"
    assert QuarantineConfig.from_env(env).processed_bucket == "acme-duffbeer-processed-orders"
    assert CatalogConfig.from_env(env) == CatalogConfig(
        processed_bucket="acme-duffbeer-processed-orders",
        database="acme_reports",
        versions_database="acme_reports_versions",
    )


def test_config_defaults() -> None:
    env = {"PROCESSED_BUCKET": "duffbeer-processed-orders"}
    assert ValidateConfig.from_env(env).max_file_bytes == 2 * 1024**3
    assert CatalogConfig.from_env(env).database == "duffbeer_reports"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: StartEtlConfig.from_env({}), "STATE_MACHINE_ARN"),
        (
            lambda: StartEtlConfig.from_env({"STATE_MACHINE_ARN": "duffbeer-orders-etl"}),
            "not a state machine ARN",
        ),
        (
            lambda: ValidateConfig.from_env({"PROCESSED_BUCKET": "p-b", "MAX_FILE_BYTES": "2GB"}),
            "not an integer",
        ),
        (
            lambda: ValidateConfig.from_env({"PROCESSED_BUCKET": "p-b", "MAX_FILE_BYTES": "0"}),
            "must be positive",
        ),
        (lambda: ValidateConfig.from_env({}), "PROCESSED_BUCKET"),
        (lambda: PublishConfig.from_env({}), "PROCESSED_BUCKET"),
        (lambda: QuarantineConfig.from_env({"PROCESSED_BUCKET": "Bad_Bucket"}), "bucket name"),
        (
            lambda: CatalogConfig.from_env(
                {"PROCESSED_BUCKET": "duffbeer-processed-orders", "GLUE_DATABASE": "Duff-Beer"}
            ),
            "GLUE_DATABASE",
        ),
    ],
)
def test_invalid_configuration_fails_at_cold_start(build: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("s3_put_single", [None]),
        ("s3_put_multi_record", [None, None, None]),
        ("s3_put_encoded_key", [None]),
        ("s3_put_folder_marker", [SkipReason.FOLDER_MARKER]),
        ("s3_put_non_csv", [None]),
        ("s3_put_empty_object", [None]),
        ("s3_copy_quarantine_prefix", [SkipReason.PIPELINE_PREFIX]),
        ("s3_test_event", []),
    ],
)
def test_event_samples_are_classified(sample: str, expected: list[SkipReason | None]) -> None:
    assert [skip_reason(obj) for obj in input_objects(load_event(sample))] == expected


def test_delete_events_never_start_a_batch() -> None:
    event = load_event("s3_put_single")
    event["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert [skip_reason(obj) for obj in input_objects(event)] == [SkipReason.NOT_OBJECT_CREATED]


@pytest.mark.parametrize(
    ("event_time", "date"),
    [
        ("2026-11-28T08:00:00.000Z", "2026-11-28"),
        ("2026-11-28T23:59:59.999Z", "2026-11-28"),
        ("2026-11-29T00:30:00+02:00", "2026-11-28"),
        ("2026-11-28T08:00:00", "2026-11-28"),
    ],
)
def test_ingest_date_is_the_utc_date_of_the_event(event_time: str, date: str) -> None:
    assert ingest_date_of(event_time) == date


def test_malformed_event_time_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="'yesterday'"):
        ingest_date_of("yesterday")


@pytest.mark.parametrize(
    ("error", "cause", "expected"),
    [
        (
            "MissingColumnsError",
            json.dumps({"errorType": "MissingColumnsError", "errorMessage": "no status"}),
            ("MissingColumnsError", "no status"),
        ),
        (
            "States.TaskFailed",
            json.dumps({"JobRunState": "FAILED", "ErrorMessage": "EncodingError: bad byte"}),
            ("EncodingError", "EncodingError: bad byte"),
        ),
        (
            "States.TaskFailed",
            json.dumps({"JobRunState": "FAILED", "ErrorMessage": "OutOfMemoryError: Java heap"}),
            ("States.TaskFailed", "OutOfMemoryError: Java heap"),
        ),
        ("States.Timeout", "", ("States.Timeout", "")),
        ("Lambda.Unknown", "not json", ("Lambda.Unknown", "not json")),
    ],
)
def test_explain_names_the_project_error_behind_a_failure(
    error: str, cause: str, expected: tuple[str, str]
) -> None:
    assert explain(error, cause) == expected


@pytest.mark.parametrize(
    ("module", "event", "field"),
    [
        ("publish_batch", {"run_id": "r"}, "batch_id"),
        ("catalog_batch", {"batch_id": 7, "run_id": "r"}, "batch_id"),
        ("clean_up", {}, "batch_id"),
        (
            "validate_orders",
            {"batch_id": "b", "run_id": "r", "bucket": "i", "key": "k"},
            "event_time",
        ),
        ("quarantine_batch", {"batch_id": "b", "run_id": "r", "bucket": "i"}, "key"),
        ("start_etl", {"Records": [{"eventName": "ObjectCreated:Put"}]}, "Records.0.eventTime"),
    ],
)
def test_a_malformed_payload_fails_the_step_naming_the_field(
    module: str, event: dict[str, object], field: str
) -> None:
    # Given a step payload with a field missing or of the wrong type
    handler = importlib.import_module(f"lambdas.{module}.handler")
    # When the step runs / Then it fails before any work, naming the field
    with pytest.raises(InvalidPayloadError, match=rf"\b{re.escape(field)}: "):
        handler.handler(event, LambdaContextStub())


def test_the_quarantine_record_keeps_a_payload_error() -> None:
    # Given the Catch output of a step that refused its payload
    cause = json.dumps(
        {
            "errorType": "InvalidPayloadError",
            "errorMessage": "ValidateEvent: event_time: Field required",
            "stackTrace": [],
        }
    )
    # When the quarantine explains it / Then the error and the field are recorded as given
    assert explain("InvalidPayloadError", cause) == (
        "InvalidPayloadError",
        "ValidateEvent: event_time: Field required",
    )
