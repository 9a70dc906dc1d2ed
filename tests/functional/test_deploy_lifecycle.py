"""Re-running, repairing and removing a deployment against a moto server."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.create_workflow import deploy, destroy, diff, main
from deploy.stack import FUNCTIONS, DeployOptions

pytestmark = pytest.mark.functional

REGION = "us-east-1"
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:duffbeer-orders-etl"
MAINTENANCE_TRIGGER = "duffbeer-maintain-tables-daily"


def _options(endpoint: str, build: Path, **overrides: Any) -> DeployOptions:
    return DeployOptions(region=REGION, endpoint_url=endpoint, build_dir=build, **overrides)


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def _zip_bytes(text: str, tmp_path: Path) -> bytes:
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("lambdas/other.py", text)
    return path.read_bytes()


_DONE = {"create": "created", "update": "updated", "delete": "deleted"}
_CHANGES = {*_DONE, *_DONE.values(), "unchanged", "skipped", "absent", "kept"}


def _changes(text: str) -> list[tuple[str, str, str]]:
    """(change, kind, resource) of each resource line of a deploy or a diff, in the past tense
    (details in brackets dropped: a diff cannot know the ids AWS will give)."""
    return [
        (
            _DONE.get(line[2:11].strip(), line[2:11].strip()),
            line[12:35].strip(),
            line[35:].split(" (")[0],
        )
        for line in text.splitlines()
        if line.startswith("  ") and line[2:11].strip() in _CHANGES
    ]


def test_diff_of_an_empty_account_is_the_deploy_that_follows_and_creates_nothing(
    moto_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an account without the stack
    argv = ["--stack-name", "acme-orders", "--endpoint-url", moto_server, "--region", REGION]
    # When the diff runs
    assert main(["diff", *argv, "--build-dir", str(tmp_path)]) == 0
    planned = capsys.readouterr().out
    # Then it created nothing, named every resource after the stack, and says what it would do
    assert _leftovers(moto_server) == {}
    assert "duffbeer" not in planned.replace("duffbeer_libs.zip", "")  # (the Glue code's file)
    for line in (
        "  create    s3 bucket              acme-orders-input-orders",
        "  create    s3 bucket              acme-orders-processed-orders",
        "  create    glue database          acme_orders_reports",
        "  create    lambda function        acme-orders-start-etl",
        "  create    state machine          acme-orders-orders-etl",
    ):
        assert line in planned, line
    assert {change for change, _, _ in _changes(planned)} == {"created", "skipped"}
    # And the deploy that follows does exactly that, resource by resource
    assert main(["deploy", *argv, "--build-dir", str(tmp_path)]) == 0
    done = capsys.readouterr().out
    assert _changes(done) == _changes(planned)
    created = len(_changes(done)) - planned.count("  skipped ")
    assert f"diff: {created} to create, 0 to update, 0 to delete, 0 unchanged" in planned


def test_second_run_changes_nothing(moto_server: str, tmp_path: Path) -> None:
    # Given a deployed stack
    deploy(_options(moto_server, tmp_path), out=io.StringIO())
    # When the same deploy runs again
    out = io.StringIO()
    deploy(_options(moto_server, tmp_path), out=out)
    # Then every resource reports unchanged
    lines = [line.split()[0] for line in out.getvalue().splitlines() if line.startswith("  ")]
    assert set(lines) == {"unchanged", "skipped"}
    assert out.getvalue().rstrip().endswith("deploy: unchanged (every resource already up to date)")


def test_drifted_code_definition_and_settings_are_updated_in_place(
    moto_server: str, tmp_path: Path
) -> None:
    # Given a deployed stack whose code, configuration, definition, role policy, API route and
    # upkeep schedule were changed by hand
    first = deploy(_options(moto_server, tmp_path), out=io.StringIO())
    glue = _client(moto_server, "glue")
    expected_trigger = glue.get_trigger(Name=MAINTENANCE_TRIGGER)["Trigger"]
    # (moto 5.2.5 has no Glue UpdateTrigger: the hand change replaces the trigger)
    glue.delete_trigger(Name=MAINTENANCE_TRIGGER)
    glue.create_trigger(
        Name=MAINTENANCE_TRIGGER,
        Type="SCHEDULED",
        Schedule="cron(0 12 * * ? *)",
        Actions=expected_trigger["Actions"],
    )
    iam = _client(moto_server, "iam")
    apigw = _client(moto_server, "apigateway")
    expected_policy = iam.get_role_policy(
        RoleName="duffbeer-validate-orders-role", PolicyName="least-privilege"
    )["PolicyDocument"]
    iam.put_role_policy(
        RoleName="duffbeer-validate-orders-role",
        PolicyName="least-privilege",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}],
            }
        ),
    )
    [sales] = [
        item
        for item in apigw.get_resources(restApiId=first.api_id)["items"]
        if item["path"] == "/sales-by-product"
    ]
    apigw.delete_method(restApiId=first.api_id, resourceId=sales["id"], httpMethod="GET")
    lam = _client(moto_server, "lambda")
    sfn = _client(moto_server, "stepfunctions")
    expected_sha = lam.get_function(FunctionName="duffbeer-publish-batch")["Configuration"][
        "CodeSha256"
    ]
    expected_definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=STATE_MACHINE)["definition"]
    )
    lam.update_function_code(
        FunctionName="duffbeer-publish-batch", ZipFile=_zip_bytes("x = 1", tmp_path)
    )
    lam.update_function_configuration(FunctionName="duffbeer-orders-api", Timeout=3)
    sfn.update_state_machine(
        stateMachineArn=STATE_MACHINE,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )
    # When a diff with a shorter log retention runs, then the deploy (moto 5.2.5 has no Glue
    # UpdateJob, so the job's own update path is exercised on AWS only)
    planned = diff(_options(moto_server, tmp_path, log_retention_days=14), out=io.StringIO())
    assert lam.get_function_configuration(FunctionName="duffbeer-orders-api")["Timeout"] == 3
    out = io.StringIO()
    second = deploy(_options(moto_server, tmp_path, log_retention_days=14), out=out)
    # Then the diff named exactly what the deploy changed, and changed nothing itself
    text = out.getvalue()
    assert _changes(planned.out.getvalue()) == _changes(text)
    # And the same resources are updated, not recreated
    assert "updated   lambda function        duffbeer-publish-batch (code)" in text
    assert "updated   state machine          duffbeer-orders-etl (definition)" in text
    assert "updated   log group              /aws/lambda/duffbeer-start-etl (14 days)" in text
    assert "updated   lambda function        duffbeer-orders-api (configuration)" in text
    assert "updated   iam inline policy      duffbeer-validate-orders-role" in text
    assert (
        f"updated   glue trigger           {MAINTENANCE_TRIGGER} ({expected_trigger['Schedule']})"
        in text
    )
    # (the deleted route is the only thing created again, and the API is redeployed for it)
    assert [line for line in text.splitlines() if line.startswith("  created")] == [
        "  created   api route              GET /sales-by-product",
        "  created   api deployment         duffbeer-orders-api/v1",
    ]
    assert second.state_machine_arn == first.state_machine_arn
    assert second.api_id == first.api_id
    assert (
        lam.get_function(FunctionName="duffbeer-publish-batch")["Configuration"]["CodeSha256"]
        == expected_sha
    )
    assert (
        json.loads(sfn.describe_state_machine(stateMachineArn=STATE_MACHINE)["definition"])
        == expected_definition
    )
    assert lam.get_function_configuration(FunctionName="duffbeer-orders-api")["Timeout"] == 29
    assert (
        iam.get_role_policy(RoleName="duffbeer-validate-orders-role", PolicyName="least-privilege")[
            "PolicyDocument"
        ]
        == expected_policy
    )
    method = apigw.get_method(restApiId=first.api_id, resourceId=sales["id"], httpMethod="GET")
    assert method["apiKeyRequired"] is True
    assert method["methodIntegration"]["type"] == "AWS_PROXY"
    retention = {
        group["logGroupName"]: group["retentionInDays"]
        for group in _client(moto_server, "logs").describe_log_groups()["logGroups"]
    }
    assert set(retention.values()) == {14}
    trigger = glue.get_trigger(Name=MAINTENANCE_TRIGGER)["Trigger"]
    assert (trigger["Schedule"], trigger["Actions"], trigger["State"]) == (
        expected_trigger["Schedule"],
        expected_trigger["Actions"],
        "ACTIVATED",
    )


def _leftovers(endpoint: str) -> dict[str, list[str]]:
    """Everything a deploy creates, as found in the account."""
    found = {
        "buckets": [b["Name"] for b in _client(endpoint, "s3").list_buckets()["Buckets"]],
        "roles": [r["RoleName"] for r in _client(endpoint, "iam").list_roles()["Roles"]],
        "functions": [
            f["FunctionName"] for f in _client(endpoint, "lambda").list_functions()["Functions"]
        ],
        "layers": [
            layer["LayerName"] for layer in _client(endpoint, "lambda").list_layers()["Layers"]
        ],
        "state_machines": [
            m["name"]
            for m in _client(endpoint, "stepfunctions").list_state_machines()["stateMachines"]
        ],
        "glue_jobs": _client(endpoint, "glue").list_jobs()["JobNames"],
        "glue_triggers": _client(endpoint, "glue").list_triggers()["TriggerNames"],
        "databases": [d["Name"] for d in _client(endpoint, "glue").get_databases()["DatabaseList"]],
        "workgroups": [
            w["Name"]
            for w in _client(endpoint, "athena").list_work_groups()["WorkGroups"]
            if w["Name"] != "primary"
        ],
        "apis": [a["name"] for a in _client(endpoint, "apigateway").get_rest_apis()["items"]],
        "usage_plans": [
            p["name"] for p in _client(endpoint, "apigateway").get_usage_plans()["items"]
        ],
        "api_keys": [k["name"] for k in _client(endpoint, "apigateway").get_api_keys()["items"]],
        "alarms": [
            a["AlarmName"]
            for a in _client(endpoint, "cloudwatch").describe_alarms()["MetricAlarms"]
        ],
        "dashboards": [
            d["DashboardName"]
            for d in _client(endpoint, "cloudwatch").list_dashboards()["DashboardEntries"]
        ],
        "rules": [r["Name"] for r in _client(endpoint, "events").list_rules()["Rules"]],
        "log_groups": [
            g["logGroupName"] for g in _client(endpoint, "logs").describe_log_groups()["logGroups"]
        ],
        "topics": [t["TopicArn"] for t in _client(endpoint, "sns").list_topics()["Topics"]],
    }
    return {kind: names for kind, names in found.items() if names}


def test_destroy_keeps_data_unless_asked_and_says_what_it_deletes(
    moto_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployed stack with an order file (two versions) in the input bucket
    deploy(_options(moto_server, tmp_path), out=io.StringIO())
    s3 = _client(moto_server, "s3")
    s3.put_object(Bucket="duffbeer-input-orders", Key="incoming/data.txt", Body=b"kept")
    s3.put_object(Bucket="duffbeer-input-orders", Key="incoming/data.txt", Body=b"kept again")
    cli = ["destroy", "--endpoint-url", moto_server, "--region", REGION]
    # When it is destroyed without --delete-data
    kept = main([*cli, "--yes"])
    # Then only the bucket holding data is left (the processed bucket held only artifacts),
    # and the exit status says so
    assert kept == 3
    assert _leftovers(moto_server) == {"buckets": ["duffbeer-input-orders"]}
    capsys.readouterr()
    # When destroyed with --delete-data
    code = main([*cli, "--delete-data", "--yes"])
    # Then it first said how much data it deletes, and nothing of the stack remains
    out = capsys.readouterr().out
    said = "--delete-data deletes {} object versions ({} bytes) from s3://duffbeer-{}-orders"
    assert said.format(2, 14, "input") in out
    assert said.format(0, 0, "processed") in out
    assert code == 0
    assert _leftovers(moto_server) == {}


def test_stacks_with_different_suffixes_live_side_by_side(moto_server: str, tmp_path: Path) -> None:
    # Given the default stack and a -qa stack in one account
    deploy(_options(moto_server, tmp_path), out=io.StringIO())
    qa = deploy(_options(moto_server, tmp_path, suffix="-qa"), out=io.StringIO())
    assert qa.input_bucket == "duffbeer-input-orders-qa"
    # When the -qa stack is destroyed
    assert destroy(
        _options(moto_server, tmp_path, suffix="-qa"), delete_data=False, out=io.StringIO()
    )
    # Then the default stack is untouched
    left = _leftovers(moto_server)
    assert left["buckets"] == ["duffbeer-input-orders", "duffbeer-processed-orders"]
    assert left["state_machines"] == ["duffbeer-orders-etl"]
    assert sorted(left["glue_jobs"]) == [
        "duffbeer-maintain-state",
        "duffbeer-maintain-tables",
        "duffbeer-transform-orders",
    ]
    assert left["glue_triggers"] == [MAINTENANCE_TRIGGER]
    assert len(left["functions"]) == len(FUNCTIONS)
    assert left["databases"] == ["duffbeer_reports"]


def test_a_deploy_over_the_earlier_release_removes_what_the_iceberg_state_replaced(
    moto_server: str, tmp_path: Path
) -> None:
    # Given a stack on which the earlier release's state machinery is still found: a view
    # named like a state table, the versions database, the PlanState function with its role,
    # log group and alarm
    deploy(_options(moto_server, tmp_path), out=io.StringIO())
    glue, lam, iam = (_client(moto_server, s) for s in ("glue", "lambda", "iam"))
    view = {"Name": "order_lines_current", "TableType": "VIRTUAL_VIEW", "ViewOriginalText": "x"}
    glue.create_table(DatabaseName="duffbeer_reports", TableInput=view)
    glue.create_database(DatabaseInput={"Name": "duffbeer_reports_versions"})
    glue.create_table(
        DatabaseName="duffbeer_reports_versions", TableInput={"Name": "order_lines_current_v7"}
    )
    role = iam.create_role(
        RoleName="duffbeer-plan-state-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName="duffbeer-plan-state-role",
        PolicyName="least-privilege",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
            }
        ),
    )
    lam.create_function(
        FunctionName="duffbeer-plan-state",
        Runtime="python3.11",
        Role=role,
        Handler="lambdas.other.handler",
        Code={"ZipFile": _zip_bytes("def handler(e, c): return e", tmp_path)},
    )
    _client(moto_server, "logs").create_log_group(logGroupName="/aws/lambda/duffbeer-plan-state")
    _client(moto_server, "cloudwatch").put_metric_alarm(
        AlarmName="duffbeer-plan-state-errors",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )

    # When this release is deployed over it
    out = io.StringIO()
    deploy(_options(moto_server, tmp_path), out=out)

    # Then each of them is gone, and said so; the views of this release are kept
    deleted = {
        tuple(line.split()[1:3]) for line in out.getvalue().splitlines() if " deleted " in line
    }
    assert deleted == {
        ("glue", "view"),
        ("glue", "database"),
        ("lambda", "function"),
        ("iam", "role"),
        ("log", "group"),
        ("cloudwatch", "alarm"),
    }, out.getvalue()
    left = _leftovers(moto_server)
    assert "duffbeer_reports_versions" not in left["databases"]
    assert "duffbeer-plan-state" not in left["functions"]
    assert "duffbeer-plan-state-role" not in left["roles"]
    assert "duffbeer-plan-state-errors" not in left["alarms"]
    assert "/aws/lambda/duffbeer-plan-state" not in left["log_groups"]
    tables = {t["Name"] for t in glue.get_tables(DatabaseName="duffbeer_reports")["TableList"]}
    assert "order_lines_current" not in tables
    assert "orders_per_client" in tables
