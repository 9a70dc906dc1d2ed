"""The create_workflow.py command line: dry run, argument checks, console instructions."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.console import execution_request
from deploy.create_workflow import CliArgs, console_execution_input, main
from duffbeer import naming

PROJECT = Path(__file__).resolve().parents[2]
# Nothing listens on port 1: any AWS call made during a dry run would fail the command.
DEAD_ENDPOINT = "http://127.0.0.1:1"


def test_dry_run_prints_the_plan_without_calling_aws(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an endpoint that refuses every connection
    # When a dry run is asked for
    code = main(
        ["--dry-run", "--suffix=-qa", "--region", "eu-west-1", "--endpoint-url", DEAD_ENDPOINT]
    )
    # Then it succeeds and names every resource it would create
    out = capsys.readouterr().out
    assert code == 0
    for name in (
        "duffbeer-input-orders-qa",
        "duffbeer-processed-orders-qa",
        "duffbeer_reports_qa",
        "duffbeer-qa-alerts",
        "duffbeer-qa-start-etl",
        "duffbeer-qa-orders-api-role",
        "duffbeer-qa-transform-orders",
        "duffbeer-qa-reports",
        "arn:aws:states:eu-west-1:<account-id>:stateMachine:duffbeer-qa-orders-etl",
        "duffbeer-qa-orders-api-key",
        "duffbeer-qa-state-machine-failed",
        "duffbeer-qa-glue-job-failed",
        "/aws/vendedlogs/states/duffbeer-qa-orders-etl",
    ):
        assert name in out, name


def test_a_failing_aws_call_names_the_resource_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given an endpoint nobody answers on / When deploying
    code = main(
        ["--region", "eu-west-1", "--endpoint-url", DEAD_ENDPOINT, "--build-dir", str(tmp_path)]
    )
    # Then the error says which call failed
    assert code == 1
    assert "error: STS GetCallerIdentity (credentials):" in capsys.readouterr().err


def test_force_without_destroy_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as raised:
        CliArgs.from_args(["--force"], {"AWS_REGION": "us-east-1"})
    assert raised.value.code == 2


def test_region_and_endpoint_come_from_the_environment_unless_given() -> None:
    env = {"AWS_DEFAULT_REGION": "eu-central-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    from_env = CliArgs.from_args([], env).options
    given = CliArgs.from_args(["--region", "us-west-2", "--endpoint-url", "https://x"], env).options
    assert (from_env.region, from_env.endpoint_url) == ("eu-central-1", "http://127.0.0.1:5000")
    assert (given.region, given.endpoint_url) == ("us-west-2", "https://x")


def test_console_input_has_the_documented_execution_input_fields() -> None:
    name, document = console_execution_input("duffbeer-input-orders", "orders.csv")
    assert list(document) == [
        "bucket",
        "key",
        "etag",
        "version_id",
        "size",
        "event_time",
        "batch_id",
        "sequencer",
    ]
    assert document["bucket"] == "duffbeer-input-orders"
    assert document["batch_id"] == "orders-fc7a95199035"
    assert name.startswith("orders-fc7a95199035-")
    json.dumps(document)


def test_script_runs_from_any_directory_with_its_own_imports(tmp_path: Path) -> None:
    # Given the script invoked by path from another directory / When asked for a dry run
    result = subprocess.run(
        [sys.executable, str(PROJECT / "deploy" / "create_workflow.py"), "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"AWS_REGION": "us-east-1", "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "PATH": "/usr/bin"},
        timeout=120,
        check=False,
    )
    # Then it plans (the installed package resolves; nothing shadows the `packaging` distribution)
    assert result.returncode == 0, result.stderr
    assert "duffbeer-input-orders" in result.stdout


def test_manual_execution_request_mirrors_the_trigger_for_one_object() -> None:
    # Given an uploaded object's HEAD / When a manual run is prepared at a fixed time
    head = {"ETag": '"9b2cf535f27731c974343645a3985328"', "ContentLength": 312}
    now = datetime(2026, 11, 28, 8, 0, 1, 250000, tzinfo=UTC)
    name, document = execution_request("duffbeer-input-orders", "orders.csv", head, now)
    # Then the input is the documented shape with the object's own values
    assert document == {
        "bucket": "duffbeer-input-orders",
        "key": "orders.csv",
        "etag": "9b2cf535f27731c974343645a3985328",
        "version_id": None,
        "size": 312,
        "event_time": "2026-11-28T08:00:01.250Z",
        "batch_id": "orders-fc7a95199035",
        "sequencer": "manual-20261128T080001",
    }
    # And the name is the trigger's rule: batch id + digest of etag and sequencer
    assert name == naming.execution_name_for(
        "orders-fc7a95199035", "9b2cf535f27731c974343645a3985328:manual-20261128T080001"
    )
