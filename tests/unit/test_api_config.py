"""The API Lambda's configuration: defaults, and every invalid setting refused at cold start."""
# ruff: noqa: E501  (the parameter tables read best one case per line)

from __future__ import annotations

import pytest

from duffbeer.errors import ConfigurationError
from lambdas.api.config import ApiConfig


def test_defaults_from_a_minimal_athena_environment() -> None:
    config = ApiConfig.from_env({"ATHENA_WORKGROUP": "duffbeer-orders", "AWS_REGION": "eu-west-1"})
    assert config == ApiConfig(
        backend="athena",
        database="duffbeer_reports",
        workgroup="duffbeer-orders",
        processed_bucket="duffbeer-processed-orders",
        region="eu-west-1",
        endpoint_url=None,
        query_timeout_s=25.0,
        snapshot_check_s=5.0,
    )
    assert config.athena_output_location == "s3://duffbeer-processed-orders/athena-results/"
    assert config.currency == "EUR"
    assert ApiConfig.from_env({"QUERY_BACKEND": "duckdb", "REPORT_CURRENCY": "USD"}).currency == "USD"


def test_local_mode_needs_no_workgroup() -> None:
    config = ApiConfig.from_env(
        {
            "QUERY_BACKEND": "DuckDB",
            "PROCESSED_BUCKET": "dev-duffbeer-processed-orders",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5123",
        }
    )
    assert (config.backend, config.processed_bucket, config.endpoint_url) == (
        "duckdb",
        "dev-duffbeer-processed-orders",
        "http://127.0.0.1:5123",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"QUERY_BACKEND": "postgres"},
            "QUERY_BACKEND must be one of athena, duckdb, got 'postgres'",
        ),
        ({"QUERY_BACKEND": "athena"}, "ATHENA_WORKGROUP is required with QUERY_BACKEND=athena"),
        ({"QUERY_BACKEND": "duckdb", "GLUE_DATABASE": ""}, "GLUE_DATABASE must not be empty"),
        ({"QUERY_BACKEND": "duckdb", "PROCESSED_BUCKET": ""}, "PROCESSED_BUCKET must not be empty"),
        (
            {"QUERY_BACKEND": "duckdb", "AWS_ENDPOINT_URL": "127.0.0.1:5000"},
            "AWS_ENDPOINT_URL must be an http(s) URL, got '127.0.0.1:5000'",
        ),
        (
            {"QUERY_BACKEND": "duckdb", "REPORT_CURRENCY": "euro"},
            "REPORT_CURRENCY must be an ISO 4217 code such as EUR, got 'euro'",
        ),
    ],
)
def test_invalid_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ApiConfig.from_env(env)
    assert str(raised.value) == message


def test_query_deadline_stays_below_api_gateway_timeout() -> None:
    with pytest.raises(ConfigurationError, match="between 0 and 29 seconds"):
        ApiConfig(
            backend="athena",
            database="d",
            workgroup="w",
            processed_bucket="b",
            query_timeout_s=29.0,
        )


def test_state_settings_default_and_override() -> None:
    # Given the deployed defaults, then every state setting given
    default = ApiConfig.from_env({"ATHENA_WORKGROUP": "wg"})
    given = ApiConfig.from_env(
        {
            "ATHENA_WORKGROUP": "wg",
            "GLUE_DATABASE": "acme_reports",
            "PUBLICATIONS_CACHE_S": "2.5",
            "ATHENA_RESULT_REUSE_MINUTES": "0",
        }
    )
    # Then the publications are read every 5 s and results reused a week, unless told
    assert (default.database, default.pointer_cache_s, default.result_reuse_minutes) == (
        "duffbeer_reports",
        5.0,
        10080,
    )
    assert (given.database, given.pointer_cache_s, given.result_reuse_minutes) == (
        "acme_reports",
        2.5,
        0,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PUBLICATIONS_CACHE_S": "soon"}, "PUBLICATIONS_CACHE_S must be a number, got 'soon'"),
        ({"PUBLICATIONS_CACHE_S": "-1"}, "PUBLICATIONS_CACHE_S must be from 0 to 300 seconds, got -1"),
        ({"PUBLICATIONS_CACHE_S": "nan"}, "PUBLICATIONS_CACHE_S must be from 0 to 300 seconds, got nan"),
        ({"ATHENA_RESULT_REUSE_MINUTES": "1.5"}, "ATHENA_RESULT_REUSE_MINUTES must be a number, got '1.5'"),
        (
            {"ATHENA_RESULT_REUSE_MINUTES": "10081"},
            "ATHENA_RESULT_REUSE_MINUTES must be from 0 to 10080, got 10081",
        ),
        (
            {"GLUE_DATABASE": 'x"; DROP'},
            "GLUE_DATABASE must be 1-255 lower-case letters, digits or _, got 'x\"; DROP'",
        ),
        (
            {"GLUE_DATABASE": "Reports-DB"},
            "GLUE_DATABASE must be 1-255 lower-case letters, digits or _, got 'Reports-DB'",
        ),
    ],
)
def test_invalid_state_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ApiConfig.from_env({"ATHENA_WORKGROUP": "wg", **env})
    assert str(raised.value) == message
