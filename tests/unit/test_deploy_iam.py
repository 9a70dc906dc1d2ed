"""The stack's IAM documents, evaluated by moto's policy engine (not by the code under test)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from deploy import iam
from deploy.stack import StackArns, StackNames

ACCOUNT = "111122223333"
REGION = "eu-west-1"
ARNS = StackArns(StackNames.build(), ACCOUNT, REGION)
ROLES = iam.role_documents(ARNS)
GLUE_ROLES = {"duffbeer-glue-role", "duffbeer-state-job-role"}

INPUT_OBJECT = "arn:aws:s3:::duffbeer-input-orders/incoming/orders.csv"
RUN_OBJECT = "arn:aws:s3:::duffbeer-processed-orders/runs/b-1/r-1/order_lines/x.parquet"
MANIFEST = "arn:aws:s3:::duffbeer-processed-orders/manifests/b-1.json"
RUN_MANIFEST = "arn:aws:s3:::duffbeer-processed-orders/runs/b-1/r-1/_manifest.json"
ERROR_REPORT = "arn:aws:s3:::duffbeer-processed-orders/quarantine/b-1/r-1/error.json"
QUARANTINE_OBJECT = "arn:aws:s3:::duffbeer-processed-orders/quarantine/b-1/r-1/orders.csv"
HISTORY_ENTRY = "arn:aws:s3:::duffbeer-processed-orders/history/8203330799999/b-1/r-1.json"
ATHENA_RESULT = "arn:aws:s3:::duffbeer-processed-orders/athena-results/q-1.csv"
ARTIFACT = "arn:aws:s3:::duffbeer-processed-orders/artifacts/glue/transform_orders.py"
STATE_MACHINE = "arn:aws:states:eu-west-1:111122223333:stateMachine:duffbeer-orders-etl"
WORKGROUP = "arn:aws:athena:eu-west-1:111122223333:workgroup/duffbeer-reports"
ORDER_LINES_TABLE = "arn:aws:glue:eu-west-1:111122223333:table/duffbeer_reports/order_lines"
OTHER_TABLE = "arn:aws:glue:eu-west-1:111122223333:table/other_db/order_lines"
RUN_INPUT = "arn:aws:s3:::duffbeer-processed-orders/runs/b-1/r-1/input/source.csv"
# The state's Iceberg files, all under the warehouse prefix: data, and metadata.
STATE_OBJECT = (
    "arn:aws:s3:::duffbeer-processed-orders/warehouse/duffbeer_reports.db/client_orders/data/"
    "client_id_bucket=7/00000-1-a.parquet"
)
STATE_METADATA = (
    "arn:aws:s3:::duffbeer-processed-orders/warehouse/duffbeer_reports.db/state_publications/"
    "metadata/00003-b.metadata.json"
)
STATE_TABLE = "arn:aws:glue:eu-west-1:111122223333:table/duffbeer_reports/client_orders"
PUBLICATIONS_TABLE = "arn:aws:glue:eu-west-1:111122223333:table/duffbeer_reports/state_publications"
STATE_JOB = "arn:aws:glue:eu-west-1:111122223333:job/duffbeer-maintain-state"


def _allowed(role: str, action: str, resource: str) -> bool:
    _, policy = ROLES[role]
    result = IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)
    return bool(result == PermissionResult.PERMITTED)


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document["Statement"])


def test_one_role_per_function_plus_glue_jobs_and_state_machine() -> None:
    assert sorted(ROLES) == sorted(
        [
            "duffbeer-start-etl-role",
            "duffbeer-validate-orders-role",
            "duffbeer-publish-batch-role",
            "duffbeer-catalog-batch-role",
            "duffbeer-clean-up-role",
            "duffbeer-quarantine-batch-role",
            "duffbeer-orders-api-role",
            "duffbeer-glue-role",
            "duffbeer-state-job-role",
            "duffbeer-states-role",
        ]
    )


def test_trust_policies_name_one_service_each() -> None:
    principals = {
        role: [s["Principal"]["Service"] for s in _statements(trust)]
        for role, (trust, _) in ROLES.items()
    }
    assert principals["duffbeer-start-etl-role"] == ["lambda.amazonaws.com"]
    assert principals["duffbeer-orders-api-role"] == ["lambda.amazonaws.com"]
    assert principals["duffbeer-glue-role"] == ["glue.amazonaws.com"]
    assert principals["duffbeer-state-job-role"] == ["glue.amazonaws.com"]
    assert principals["duffbeer-states-role"] == ["states.amazonaws.com"]
    states_trust, _ = ROLES["duffbeer-states-role"]
    assert states_trust["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT}
    }


def test_no_wildcard_actions_and_star_resources_only_where_aws_requires_them() -> None:
    star_resource_sids = set()
    for _, policy in ROLES.values():
        for statement in _statements(policy):
            assert statement["Effect"] == "Allow"
            for action in statement["Action"]:
                assert "*" not in action, action
            if "*" in statement["Resource"]:
                star_resource_sids.add(statement["Sid"])
    assert star_resource_sids == {"PublishJobMetrics", "DeliverExecutionLogs", "SendTraces"}


@pytest.mark.parametrize(
    ("role", "action", "resource"),
    [
        ("duffbeer-start-etl-role", "states:StartExecution", STATE_MACHINE),
        (
            "duffbeer-start-etl-role",
            "sns:Publish",
            "arn:aws:sns:eu-west-1:111122223333:duffbeer-alerts",
        ),
        ("duffbeer-validate-orders-role", "s3:GetObject", INPUT_OBJECT),
        ("duffbeer-validate-orders-role", "s3:PutObject", RUN_INPUT),
        ("duffbeer-publish-batch-role", "s3:GetObject", MANIFEST),
        ("duffbeer-publish-batch-role", "s3:GetObject", RUN_OBJECT),
        ("duffbeer-publish-batch-role", "s3:PutObject", MANIFEST),
        ("duffbeer-publish-batch-role", "s3:PutObject", HISTORY_ENTRY),
        ("duffbeer-catalog-batch-role", "s3:GetObject", MANIFEST),
        ("duffbeer-catalog-batch-role", "glue:BatchCreatePartition", ORDER_LINES_TABLE),
        ("duffbeer-clean-up-role", "s3:DeleteObject", RUN_OBJECT),
        ("duffbeer-clean-up-role", "s3:DeleteObject", HISTORY_ENTRY),
        ("duffbeer-quarantine-batch-role", "s3:GetObject", INPUT_OBJECT),
        ("duffbeer-quarantine-batch-role", "s3:PutObject", QUARANTINE_OBJECT),
        ("duffbeer-quarantine-batch-role", "s3:PutObject", HISTORY_ENTRY),
        ("duffbeer-quarantine-batch-role", "s3:PutObjectTagging", HISTORY_ENTRY),
        ("duffbeer-orders-api-role", "athena:StartQueryExecution", WORKGROUP),
        ("duffbeer-orders-api-role", "glue:GetTable", ORDER_LINES_TABLE),
        # The publications' metadata, and the state's files Athena reads for the role.
        ("duffbeer-orders-api-role", "glue:GetTable", PUBLICATIONS_TABLE),
        ("duffbeer-orders-api-role", "s3:GetObject", STATE_METADATA),
        ("duffbeer-orders-api-role", "s3:GetObject", STATE_OBJECT),
        ("duffbeer-orders-api-role", "s3:PutObject", ATHENA_RESULT),
        # GET /batches: the batch pointers, run manifests and quarantine reports.
        ("duffbeer-orders-api-role", "s3:GetObject", MANIFEST),
        ("duffbeer-orders-api-role", "s3:GetObject", RUN_MANIFEST),
        ("duffbeer-orders-api-role", "s3:GetObject", ERROR_REPORT),
        ("duffbeer-glue-role", "s3:GetObject", RUN_INPUT),
        ("duffbeer-glue-role", "s3:GetObject", ARTIFACT),
        ("duffbeer-glue-role", "s3:PutObject", RUN_OBJECT),
        ("duffbeer-state-job-role", "s3:GetObject", RUN_OBJECT),
        ("duffbeer-state-job-role", "s3:GetObject", MANIFEST),
        ("duffbeer-state-job-role", "s3:GetObject", ARTIFACT),
        # Iceberg's commits: files under the warehouse, UpdateTable on the state's tables.
        ("duffbeer-state-job-role", "s3:PutObject", STATE_OBJECT),
        ("duffbeer-state-job-role", "s3:PutObject", STATE_METADATA),
        ("duffbeer-state-job-role", "s3:DeleteObject", STATE_OBJECT),
        ("duffbeer-state-job-role", "glue:UpdateTable", STATE_TABLE),
        ("duffbeer-state-job-role", "glue:CreateTable", PUBLICATIONS_TABLE),
        (
            "duffbeer-states-role",
            "lambda:InvokeFunction",
            "arn:aws:lambda:eu-west-1:111122223333:function:duffbeer-validate-orders",
        ),
        (
            "duffbeer-states-role",
            "glue:StartJobRun",
            "arn:aws:glue:eu-west-1:111122223333:job/duffbeer-transform-orders",
        ),
        ("duffbeer-states-role", "glue:StartJobRun", STATE_JOB),
        (
            "duffbeer-states-role",
            "sns:Publish",
            "arn:aws:sns:eu-west-1:111122223333:duffbeer-alerts",
        ),
    ],
)
def test_each_role_can_do_its_job(role: str, action: str, resource: str) -> None:
    assert _allowed(role, action, resource)


def test_the_functions_and_the_state_machine_send_traces_and_the_jobs_do_not() -> None:
    # Given every role / Then exactly the traced ones (Lambda and Step Functions) write X-Ray
    tracing = {
        role
        for role in ROLES
        if all(
            _allowed(role, action, "*")
            for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
        )
    }
    assert tracing == {role for role in ROLES if role not in GLUE_ROLES}


@pytest.mark.parametrize(
    ("role", "action", "resource"),
    [
        # The API role writes nothing but Athena's own results.
        ("duffbeer-orders-api-role", "s3:PutObject", INPUT_OBJECT),
        ("duffbeer-orders-api-role", "s3:PutObject", RUN_OBJECT),
        ("duffbeer-orders-api-role", "s3:PutObject", MANIFEST),
        ("duffbeer-orders-api-role", "s3:PutObject", STATE_METADATA),
        ("duffbeer-orders-api-role", "glue:UpdateTable", STATE_TABLE),
        ("duffbeer-orders-api-role", "s3:GetObject", RUN_OBJECT),
        ("duffbeer-orders-api-role", "s3:GetObject", RUN_INPUT),
        ("duffbeer-orders-api-role", "s3:GetObject", QUARANTINE_OBJECT),
        ("duffbeer-orders-api-role", "s3:PutObject", RUN_MANIFEST),
        ("duffbeer-orders-api-role", "s3:PutObject", HISTORY_ENTRY),
        ("duffbeer-orders-api-role", "s3:DeleteObject", HISTORY_ENTRY),
        ("duffbeer-orders-api-role", "s3:DeleteObject", RUN_OBJECT),
        ("duffbeer-orders-api-role", "glue:CreateTable", ORDER_LINES_TABLE),
        ("duffbeer-orders-api-role", "states:StartExecution", STATE_MACHINE),
        # Validation reads its input and writes only the run's copy of it.
        ("duffbeer-validate-orders-role", "s3:PutObject", RUN_OBJECT),
        ("duffbeer-validate-orders-role", "s3:PutObject", QUARANTINE_OBJECT),
        ("duffbeer-validate-orders-role", "s3:GetObject", MANIFEST),
        ("duffbeer-validate-orders-role", "s3:PutObject", INPUT_OBJECT),
        # The trigger never touches data.
        ("duffbeer-start-etl-role", "s3:GetObject", INPUT_OBJECT),
        (
            "duffbeer-start-etl-role",
            "states:StartExecution",
            "arn:aws:states:eu-west-1:111122223333:stateMachine:someone-elses",
        ),
        # Publishing writes the batch pointer only; it deletes nothing.
        ("duffbeer-publish-batch-role", "s3:DeleteObject", MANIFEST),
        ("duffbeer-publish-batch-role", "s3:DeleteObject", RUN_OBJECT),
        ("duffbeer-publish-batch-role", "s3:DeleteObject", HISTORY_ENTRY),
        ("duffbeer-publish-batch-role", "s3:PutObject", RUN_OBJECT),
        ("duffbeer-publish-batch-role", "s3:PutObject", STATE_OBJECT),
        # Clean-up deletes superseded runs only: never a pointer, never the state's files.
        ("duffbeer-clean-up-role", "s3:DeleteObject", MANIFEST),
        ("duffbeer-clean-up-role", "s3:DeleteObject", STATE_OBJECT),
        ("duffbeer-clean-up-role", "s3:PutObject", RUN_OBJECT),
        ("duffbeer-clean-up-role", "glue:DeleteTable", ORDER_LINES_TABLE),
        ("duffbeer-catalog-batch-role", "glue:CreateTable", OTHER_TABLE),
        # The catalog step keeps the batch tables and views; the state's tables are Iceberg's.
        ("duffbeer-catalog-batch-role", "glue:UpdateTable", STATE_TABLE),
        ("duffbeer-catalog-batch-role", "s3:PutObject", MANIFEST),
        ("duffbeer-quarantine-batch-role", "s3:PutObject", RUN_OBJECT),
        ("duffbeer-quarantine-batch-role", "s3:DeleteObject", INPUT_OBJECT),
        ("duffbeer-glue-role", "s3:PutObject", INPUT_OBJECT),
        ("duffbeer-glue-role", "s3:GetObject", INPUT_OBJECT),
        ("duffbeer-glue-role", "s3:PutObject", QUARANTINE_OBJECT),
        ("duffbeer-glue-role", "s3:PutObject", HISTORY_ENTRY),
        ("duffbeer-glue-role", "s3:PutObject", MANIFEST),
        ("duffbeer-glue-role", "s3:DeleteObject", MANIFEST),
        ("duffbeer-glue-role", "s3:PutObject", STATE_OBJECT),
        # The state job commits to the state's tables only, never a pointer or a run.
        ("duffbeer-state-job-role", "s3:PutObject", MANIFEST),
        ("duffbeer-state-job-role", "s3:PutObject", RUN_OBJECT),
        ("duffbeer-state-job-role", "s3:DeleteObject", RUN_OBJECT),
        ("duffbeer-state-job-role", "s3:GetObject", INPUT_OBJECT),
        ("duffbeer-state-job-role", "glue:UpdateTable", ORDER_LINES_TABLE),
        ("duffbeer-state-job-role", "glue:DeleteTable", STATE_TABLE),
        ("duffbeer-state-job-role", "glue:UpdateTable", OTHER_TABLE),
        # The transform job never touches the state.
        ("duffbeer-glue-role", "glue:UpdateTable", STATE_TABLE),
        (
            "duffbeer-states-role",
            "lambda:InvokeFunction",
            "arn:aws:lambda:eu-west-1:111122223333:function:duffbeer-orders-api",
        ),
        ("duffbeer-states-role", "s3:GetObject", INPUT_OBJECT),
    ],
)
def test_each_role_is_denied_what_it_does_not_need(role: str, action: str, resource: str) -> None:
    assert not _allowed(role, action, resource)


def test_bucket_policy_denies_every_non_tls_request() -> None:
    policy = iam.tls_only_bucket_policy(ARNS, "duffbeer-input-orders")
    assert policy["Statement"] == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [
                "arn:aws:s3:::duffbeer-input-orders",
                "arn:aws:s3:::duffbeer-input-orders/*",
            ],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]


def test_topic_policy_lets_only_the_glue_rule_and_alarms_publish() -> None:
    statements = {s["Sid"]: s for s in iam.topic_policy(ARNS)["Statement"]}
    assert statements["GlueFailureRulePublishes"]["Principal"] == {
        "Service": "events.amazonaws.com"
    }
    assert statements["GlueFailureRulePublishes"]["Condition"] == {
        "ArnEquals": {
            "aws:SourceArn": "arn:aws:events:eu-west-1:111122223333:rule/duffbeer-glue-job-failed"
        }
    }
    assert statements["AlarmsPublish"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}


def test_the_api_lists_the_run_index_not_every_run_and_report() -> None:
    # Given the API role / When its bucket listings are read from the policy
    _, policy = ROLES["duffbeer-orders-api-role"]
    listed = sorted(
        prefix
        for statement in _statements(policy)
        if statement["Action"] == ["s3:ListBucket"]
        for prefix in statement["Condition"]["StringLike"]["s3:prefix"]
    )
    # Then GET /batches lists the run index only: its cost does not follow the data written
    assert listed == ["athena-results/*", "history/*", "warehouse/*"]
