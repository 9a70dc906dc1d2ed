"""Names, ARNs and option validation of a deployment (deploy/stack.py)."""

from __future__ import annotations

import pytest

from deploy.stack import DeployOptions, StackArns, StackNames
from duffbeer.errors import ConfigurationError


def test_default_names_are_the_seed_names() -> None:
    # Given no prefix or suffix / When names are derived
    names = StackNames.build()
    # Then the buckets and the database are the names the mission asks for
    assert (names.input_bucket, names.processed_bucket, names.database) == (
        "duffbeer-input-orders",
        "duffbeer-processed-orders",
        "duffbeer_reports",
    )
    assert names.state_machine == "duffbeer-orders-etl"
    assert names.function("start_etl") == "duffbeer-start-etl"
    assert names.role("orders_api") == "duffbeer-orders-api-role"


def test_prefix_and_suffix_reach_every_name() -> None:
    # Given a prefix and a suffix / When names are derived
    names = StackNames.build("acme-", "-dev")
    # Then buckets, database and every other resource carry both
    assert names.input_bucket == "acme-duffbeer-input-orders-dev"
    assert names.processed_bucket == "acme-duffbeer-processed-orders-dev"
    assert names.database == "acme_duffbeer_reports_dev"
    assert names.glue_job == "acme-duffbeer-dev-transform-orders"
    assert names.state_job == "acme-duffbeer-dev-maintain-state"
    assert names.maintenance_job == "acme-duffbeer-dev-maintain-tables"
    assert names.maintenance_trigger == "acme-duffbeer-dev-maintain-tables-daily"
    assert (
        names.lambda_log_group("validate_orders") == "/aws/lambda/acme-duffbeer-dev-validate-orders"
    )
    assert names.roles == (
        "acme-duffbeer-dev-start-etl-role",
        "acme-duffbeer-dev-validate-orders-role",
        "acme-duffbeer-dev-publish-batch-role",
        "acme-duffbeer-dev-catalog-batch-role",
        "acme-duffbeer-dev-clean-up-role",
        "acme-duffbeer-dev-quarantine-batch-role",
        "acme-duffbeer-dev-orders-api-role",
        "acme-duffbeer-dev-glue-role",
        "acme-duffbeer-dev-state-job-role",
        "acme-duffbeer-dev-states-role",
    )


def test_arns_are_known_before_the_resources_exist() -> None:
    # Given the default names in an account / When ARNs are derived
    arns = StackArns(StackNames.build(), "111122223333", "eu-west-1")
    # Then they are the ARNs AWS will assign
    assert arns.state_machine == (
        "arn:aws:states:eu-west-1:111122223333:stateMachine:duffbeer-orders-etl"
    )
    assert arns.function("orders_api") == (
        "arn:aws:lambda:eu-west-1:111122223333:function:duffbeer-orders-api"
    )
    assert arns.role("glue") == "arn:aws:iam::111122223333:role/duffbeer-glue-role"
    assert arns.objects("duffbeer-processed-orders", "runs/") == (
        "arn:aws:s3:::duffbeer-processed-orders/runs/*"
    )
    assert arns.execute_api("abc123") == "arn:aws:execute-api:eu-west-1:111122223333:abc123/*/GET/*"


@pytest.mark.parametrize(
    ("prefix", "suffix"),
    [("Acme-", ""), ("", "_dev"), ("", "-" + "x" * 40), ("a b", "")],
)
def test_invalid_affixes_are_refused(prefix: str, suffix: str) -> None:
    # Given an affix that would make an invalid or too long bucket name / Then it is refused
    with pytest.raises(ConfigurationError):
        DeployOptions(prefix=prefix, suffix=suffix)


def test_missing_region_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="region"):
        DeployOptions(region="")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [(None, True), ("https://s3.example.com", True), ("http://127.0.0.1:5000", False)],
)
def test_tls_only_policy_is_skipped_only_for_plain_http_endpoints(
    endpoint: str | None, expected: bool
) -> None:
    assert DeployOptions(endpoint_url=endpoint).enforce_tls is expected
