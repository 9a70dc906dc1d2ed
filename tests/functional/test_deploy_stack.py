"""A full deploy against a moto server, then every resource and its wiring checked."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.core import Change, Clients, Reporter
from deploy.create_workflow import deploy, main
from deploy.resources.analytics import ensure_trigger
from deploy.stack import DeployOptions, StackOutputs
from workflows.definition import WorkflowConfig, definition_dict

pytestmark = pytest.mark.functional

REGION = "us-east-1"
ACCOUNT = "123456789012"
PROJECT = Path(__file__).resolve().parents[2]
FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:duffbeer-alerts"
STATE_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:duffbeer-orders-etl"


@pytest.fixture(scope="module")
def stack(
    _moto_server_session: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, StackOutputs]]:
    """One deployment shared by the read-only checks of this module."""
    urllib.request.urlopen(
        urllib.request.Request(f"{_moto_server_session}/moto-api/reset", method="POST")
    ).read()
    options = DeployOptions(
        region=REGION,
        endpoint_url=_moto_server_session,
        build_dir=tmp_path_factory.mktemp("build"),
    )
    outputs = deploy(options, out=io.StringIO())
    yield _moto_server_session, outputs
    urllib.request.urlopen(
        urllib.request.Request(f"{_moto_server_session}/moto-api/reset", method="POST")
    ).read()


def _client(stack: tuple[str, StackOutputs], service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=stack[0])


def test_outputs_name_every_resource(stack: tuple[str, StackOutputs]) -> None:
    outputs = stack[1]
    assert outputs.input_bucket == "duffbeer-input-orders"
    assert outputs.processed_bucket == "duffbeer-processed-orders"
    assert outputs.state_machine_arn == STATE_MACHINE
    assert outputs.function_arns == {
        "start_etl": f"{FN}duffbeer-start-etl",
        "validate_orders": f"{FN}duffbeer-validate-orders",
        "publish_batch": f"{FN}duffbeer-publish-batch",
        "catalog_batch": f"{FN}duffbeer-catalog-batch",
        "clean_up": f"{FN}duffbeer-clean-up",
        "quarantine_batch": f"{FN}duffbeer-quarantine-batch",
        "orders_api": f"{FN}duffbeer-orders-api",
    }
    assert outputs.topic_arn == TOPIC
    assert (outputs.glue_job_name, outputs.state_job_name, outputs.maintenance_job_name) == (
        "duffbeer-transform-orders",
        "duffbeer-maintain-state",
        "duffbeer-maintain-tables",
    )
    assert (outputs.database, outputs.workgroup) == ("duffbeer_reports", "duffbeer-reports")
    # The outputs file names no versions database any more
    assert "versions_database" not in outputs.to_dict()
    assert outputs.to_dict()["maintenance_job_name"] == "duffbeer-maintain-tables"
    assert outputs.api_url == f"https://{outputs.api_id}.execute-api.{REGION}.amazonaws.com/v1"


def test_buckets_are_encrypted_private_and_expire_temporary_prefixes(
    stack: tuple[str, StackOutputs],
) -> None:
    s3 = _client(stack, "s3")
    for bucket in ("duffbeer-input-orders", "duffbeer-processed-orders"):
        sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert sse["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
        assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
    rules = {
        rule["ID"]: rule
        for rule in s3.get_bucket_lifecycle_configuration(Bucket="duffbeer-processed-orders")[
            "Rules"
        ]
    }
    assert rules["expire-athena-results"]["Filter"] == {"Prefix": "athena-results/"}
    assert rules["expire-athena-results"]["Expiration"] == {"Days": 7}
    assert rules["expire-quarantine"]["Filter"] == {"Prefix": "quarantine/"}
    assert rules["expire-quarantine"]["Expiration"] == {"Days": 90}
    # The run index's entries of quarantined runs (tagged) expire with their reports
    assert rules["expire-quarantined-history"]["Filter"] == {
        "And": {
            "Prefix": "history/",
            "Tags": [{"Key": "duffbeer-history", "Value": "quarantined"}],
        }
    }
    assert rules["expire-quarantined-history"]["Expiration"] == {"Days": 90}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }
    # The processed bucket is versioned: what a job or a clean-up overwrites or deletes
    # stays restorable for 30 days
    assert s3.get_bucket_versioning(Bucket="duffbeer-processed-orders")["Status"] == "Enabled"
    replaced = rules["expire-replaced-processed-versions"]
    assert replaced["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert replaced["Expiration"] == {"ExpiredObjectDeleteMarker": True}


def test_every_new_object_triggers_start_etl_on_a_versioned_bucket(
    stack: tuple[str, StackOutputs],
) -> None:
    s3 = _client(stack, "s3")
    config = s3.get_bucket_notification_configuration(Bucket="duffbeer-input-orders")
    [target] = config["LambdaFunctionConfigurations"]
    assert target["LambdaFunctionArn"] == f"{FN}duffbeer-start-etl"
    assert target["Events"] == ["s3:ObjectCreated:*"]
    # No suffix filter: S3's is case-sensitive; start_etl and validation decide
    assert "Filter" not in target
    assert s3.get_bucket_versioning(Bucket="duffbeer-input-orders")["Status"] == "Enabled"
    rules = {
        r["ID"]: r
        for r in s3.get_bucket_lifecycle_configuration(Bucket="duffbeer-input-orders")["Rules"]
    }
    assert rules["expire-replaced-input-versions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": 30
    }
    policy = json.loads(
        _client(stack, "lambda").get_policy(FunctionName="duffbeer-start-etl")["Policy"]
    )
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "lambda:InvokeFunction"
    assert (
        statement["Condition"]["ArnLike"]["AWS:SourceArn"] == "arn:aws:s3:::duffbeer-input-orders"
    )
    assert statement["Condition"]["StringEquals"]["AWS:SourceAccount"] == ACCOUNT
    # An event start_etl still fails on after Lambda's retries goes to the alert topic.
    invoke = _client(stack, "lambda").get_function_event_invoke_config(
        FunctionName="duffbeer-start-etl"
    )
    assert invoke["DestinationConfig"] == {"OnFailure": {"Destination": TOPIC}}
    assert invoke["MaximumRetryAttempts"] == 2


def test_functions_have_their_handler_environment_layer_and_role(
    stack: tuple[str, StackOutputs],
) -> None:
    lam = _client(stack, "lambda")
    deployed = sorted(f["FunctionName"] for f in lam.list_functions()["Functions"])
    # The state is merged and published by the state job: no PlanState/PublishState functions
    assert deployed == [
        "duffbeer-catalog-batch",
        "duffbeer-clean-up",
        "duffbeer-orders-api",
        "duffbeer-publish-batch",
        "duffbeer-quarantine-batch",
        "duffbeer-start-etl",
        "duffbeer-validate-orders",
    ]
    common = {
        "POWERTOOLS_METRICS_NAMESPACE": "DuffBeerOrders",
        "LOG_LEVEL": "INFO",
    }
    expected = {
        "duffbeer-start-etl": (
            "lambdas.start_etl.handler.handler",
            {"STATE_MACHINE_ARN": STATE_MACHINE},
        ),
        "duffbeer-validate-orders": (
            "lambdas.validate_orders.handler.handler",
            {"MAX_FILE_BYTES": str(2 * 1024**3), "PROCESSED_BUCKET": "duffbeer-processed-orders"},
        ),
        "duffbeer-publish-batch": (
            "lambdas.publish_batch.handler.handler",
            {"PROCESSED_BUCKET": "duffbeer-processed-orders"},
        ),
        "duffbeer-catalog-batch": (
            "lambdas.catalog_batch.handler.handler",
            {
                "PROCESSED_BUCKET": "duffbeer-processed-orders",
                "GLUE_DATABASE": "duffbeer_reports",
            },
        ),
        "duffbeer-clean-up": (
            "lambdas.clean_up.handler.handler",
            {"PROCESSED_BUCKET": "duffbeer-processed-orders"},
        ),
        "duffbeer-quarantine-batch": (
            "lambdas.quarantine_batch.handler.handler",
            {"PROCESSED_BUCKET": "duffbeer-processed-orders"},
        ),
        "duffbeer-orders-api": (
            "lambdas.api.handler.handler",
            {
                "QUERY_BACKEND": "athena",
                "GLUE_DATABASE": "duffbeer_reports",
                "ATHENA_WORKGROUP": "duffbeer-reports",
                "PROCESSED_BUCKET": "duffbeer-processed-orders",
            },
        ),
    }
    for name, (handler, env) in expected.items():
        config = lam.get_function_configuration(FunctionName=name)
        assert config["Handler"] == handler
        assert config["Runtime"] == "python3.11"
        assert config["Role"] == f"arn:aws:iam::{ACCOUNT}:role/{name}-role"
        assert config["Environment"]["Variables"] == {
            "POWERTOOLS_SERVICE_NAME": name,
            **common,
            **env,
        }
        assert [layer["Arn"] for layer in config["Layers"]] == [
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:duffbeer-powertools:1"
        ]
        assert config["TracingConfig"] == {"Mode": "Active"}


def test_the_state_machine_is_traced(stack: tuple[str, StackOutputs]) -> None:
    described = _client(stack, "stepfunctions").describe_state_machine(
        stateMachineArn=STATE_MACHINE
    )
    assert described["tracingConfiguration"] == {"enabled": True}


def test_every_log_group_has_a_retention_period(stack: tuple[str, StackOutputs]) -> None:
    groups = {
        group["logGroupName"]: group.get("retentionInDays")
        for group in _client(stack, "logs").describe_log_groups()["logGroups"]
    }
    assert groups == {
        "/aws/lambda/duffbeer-start-etl": 30,
        "/aws/lambda/duffbeer-validate-orders": 30,
        "/aws/lambda/duffbeer-publish-batch": 30,
        "/aws/lambda/duffbeer-catalog-batch": 30,
        "/aws/lambda/duffbeer-clean-up": 30,
        "/aws/lambda/duffbeer-quarantine-batch": 30,
        "/aws/lambda/duffbeer-orders-api": 30,
        "/aws/vendedlogs/states/duffbeer-orders-etl": 30,
        "/aws-glue/jobs/duffbeer-transform-orders": 30,
        "/aws-glue/jobs/duffbeer-maintain-state": 30,
        "/aws-glue/jobs/duffbeer-maintain-tables": 30,
    }


def test_deployed_definition_is_the_workflows_output(stack: tuple[str, StackOutputs]) -> None:
    sfn = _client(stack, "stepfunctions")
    described = sfn.describe_state_machine(stateMachineArn=STATE_MACHINE)
    expected = definition_dict(
        WorkflowConfig(
            state_machine_name="duffbeer-orders-etl",
            role_arn=f"arn:aws:iam::{ACCOUNT}:role/duffbeer-states-role",
            validate_function_arn=f"{FN}duffbeer-validate-orders",
            publish_function_arn=f"{FN}duffbeer-publish-batch",
            catalog_function_arn=f"{FN}duffbeer-catalog-batch",
            clean_up_function_arn=f"{FN}duffbeer-clean-up",
            quarantine_function_arn=f"{FN}duffbeer-quarantine-batch",
            glue_job_name="duffbeer-transform-orders",
            state_job_name="duffbeer-maintain-state",
            processed_bucket="duffbeer-processed-orders",
            database="duffbeer_reports",
            failure_topic_arn=TOPIC,
            region=REGION,
            glue_timeout_seconds=3900,
        )
    )
    deployed = json.loads(described["definition"])
    assert deployed == expected
    # ... whose batch path merges the state with the state job, waiting for it (.sync)
    path, state = [], deployed["StartAt"]
    while state != "BatchSucceeded":
        path.append(state)
        state = deployed["States"][state]["Next"]
    assert path == [
        "ReadInput",
        "ValidateOrders",
        "TransformOrders",
        "PublishBatch",
        "MergeState",
        "CatalogBatch",
        "CleanUp",
    ]
    merge = deployed["States"]["MergeState"]
    assert merge["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    assert merge["Parameters"] == {
        "JobName": "duffbeer-maintain-state",
        "Arguments": {
            "--processed_path": "s3://duffbeer-processed-orders/",
            "--database": "duffbeer_reports",
            "--batch_id.$": "$.batch_id",
            "--run_id.$": "$$.Execution.Name",
        },
    }
    assert not {"PlanState", "PublishState"} & set(deployed["States"])
    assert described["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/duffbeer-states-role"
    logging = described["loggingConfiguration"]
    assert logging["level"] == "ALL"
    assert logging["destinations"] == [
        {
            "cloudWatchLogsLogGroup": {
                "logGroupArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
                "/aws/vendedlogs/states/duffbeer-orders-etl:*"
            }
        }
    ]


def test_glue_job_runs_the_uploaded_script_on_glue_5(stack: tuple[str, StackOutputs]) -> None:
    job = _client(stack, "glue").get_job(JobName="duffbeer-transform-orders")["Job"]
    assert job["GlueVersion"] == "5.0"
    assert job["Role"] == f"arn:aws:iam::{ACCOUNT}:role/duffbeer-glue-role"
    assert (job["WorkerType"], job["NumberOfWorkers"]) == ("G.1X", 2)
    script = "s3://duffbeer-processed-orders/artifacts/glue/transform_orders.py"
    assert job["Command"]["ScriptLocation"] == script
    args = job["DefaultArguments"]
    assert (
        args["--extra-py-files"]
        == "s3://duffbeer-processed-orders/artifacts/glue/duffbeer_libs.zip"
    )
    assert args["--output_path"] == "s3://duffbeer-processed-orders/"
    assert args["--job-bookmark-option"] == "job-bookmark-disable"
    assert args["--enable-metrics"] == "true"
    assert args["--enable-continuous-cloudwatch-log"] == "true"
    assert args["--continuous-log-logGroup"] == "/aws-glue/jobs/duffbeer-transform-orders"
    # The transform writes Parquet by run prefix: no Iceberg catalog
    assert "--datalake-formats" not in args and "--conf" not in args
    uploaded = (
        _client(stack, "s3")
        .get_object(Bucket="duffbeer-processed-orders", Key="artifacts/glue/transform_orders.py")[
            "Body"
        ]
        .read()
    )
    assert uploaded == (PROJECT / "glue_jobs" / "transform_orders.py").read_bytes()


# The Spark settings that make glue_catalog.<database>.<table> an Iceberg table in the Glue
# Data Catalog, files under the processed bucket's warehouse prefix.
ICEBERG_CONF = (
    "spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
    " --conf spark.sql.catalog.glue_catalog=org.apache.iceberg.spark.SparkCatalog"
    " --conf spark.sql.catalog.glue_catalog.catalog-impl=org.apache.iceberg.aws.glue.GlueCatalog"
    " --conf spark.sql.catalog.glue_catalog.io-impl=org.apache.iceberg.aws.s3.S3FileIO"
    " --conf spark.sql.catalog.glue_catalog.warehouse=s3://duffbeer-processed-orders/warehouse/"
    " --conf spark.sql.catalog.glue_catalog.cache-enabled=false"
)


@pytest.mark.parametrize(
    ("job_name", "script", "concurrent_runs", "job_arguments"),
    [
        (
            "duffbeer-maintain-state",
            "maintain_state.py",
            # Merges of several executions overlap; Iceberg's commit decides
            10,
            {"--processed_path": "s3://duffbeer-processed-orders/"},
        ),
        (
            "duffbeer-maintain-tables",
            "maintain_tables.py",
            1,
            {"--snapshot_retention_hours": "168"},
        ),
    ],
)
def test_state_jobs_run_glue_5_with_iceberg_in_the_glue_catalog(
    stack: tuple[str, StackOutputs],
    job_name: str,
    script: str,
    concurrent_runs: int,
    job_arguments: dict[str, str],
) -> None:
    job = _client(stack, "glue").get_job(JobName=job_name)["Job"]
    assert job["GlueVersion"] == "5.0"
    assert job["Role"] == f"arn:aws:iam::{ACCOUNT}:role/duffbeer-state-job-role"
    assert (job["WorkerType"], job["NumberOfWorkers"]) == ("G.1X", 2)
    assert (job["Timeout"], job["MaxRetries"]) == (60, 0)
    assert job["ExecutionProperty"] == {"MaxConcurrentRuns": concurrent_runs}
    assert job["Command"] == {
        "Name": "glueetl",
        "ScriptLocation": f"s3://duffbeer-processed-orders/artifacts/glue/{script}",
        "PythonVersion": "3",
    }
    assert job["DefaultArguments"] == {
        "--extra-py-files": "s3://duffbeer-processed-orders/artifacts/glue/duffbeer_libs.zip",
        **job_arguments,
        "--database": "duffbeer_reports",
        # Glue 5.0's own Iceberg, with the catalog settings local mode uses too
        "--datalake-formats": "iceberg",
        "--conf": ICEBERG_CONF,
        "--job-bookmark-option": "job-bookmark-disable",
        "--enable-metrics": "true",
        "--enable-observability-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        "--continuous-log-logGroup": f"/aws-glue/jobs/{job_name}",
        "--job-language": "python",
    }
    uploaded = (
        _client(stack, "s3")
        .get_object(Bucket="duffbeer-processed-orders", Key=f"artifacts/glue/{script}")["Body"]
        .read()
    )
    assert uploaded == (PROJECT / "glue_jobs" / script).read_bytes()
    tags = _client(stack, "glue").get_tags(
        ResourceArn=f"arn:aws:glue:{REGION}:{ACCOUNT}:job/{job_name}"
    )["Tags"]
    assert tags == {"project": "duffbeer-orders", "stack": "duffbeer"}


def test_table_upkeep_runs_daily_from_a_scheduled_trigger(
    stack: tuple[str, StackOutputs],
) -> None:
    glue = _client(stack, "glue")
    trigger = glue.get_trigger(Name="duffbeer-maintain-tables-daily")["Trigger"]
    assert trigger["Type"] == "SCHEDULED"
    assert trigger["Schedule"] == "cron(15 3 * * ? *)"
    assert trigger["State"] == "ACTIVATED"
    assert trigger["Actions"] == [{"JobName": "duffbeer-maintain-tables"}]
    assert trigger["Description"] == (
        "Duff Beer orders: daily upkeep of the state's Iceberg tables"
    )
    assert [t["Name"] for t in glue.get_triggers()["Triggers"]] == [
        "duffbeer-maintain-tables-daily"
    ]
    tags = glue.get_tags(
        ResourceArn=f"arn:aws:glue:{REGION}:{ACCOUNT}:trigger/duffbeer-maintain-tables-daily"
    )["Tags"]
    assert tags == {"project": "duffbeer-orders", "stack": "duffbeer"}


def test_catalog_exists_before_the_first_batch_and_the_workgroup_caps_queries(
    stack: tuple[str, StackOutputs],
) -> None:
    glue = _client(stack, "glue")
    # One database: no versions database any more
    assert [d["Name"] for d in glue.get_databases()["DatabaseList"]] == ["duffbeer_reports"]
    tables = {
        table["Name"]: table["TableType"]
        for table in glue.get_tables(DatabaseName="duffbeer_reports")["TableList"]
    }
    # The batch history and the views; the state's Iceberg tables (order_lines_current,
    # orders_summary, ...) come with the state job's first run
    assert tables == {
        "order_lines": "EXTERNAL_TABLE",
        "rejects": "EXTERNAL_TABLE",
        "batch_client_sales": "EXTERNAL_TABLE",
        "batch_product_channel_sales": "EXTERNAL_TABLE",
        "batch_order_status": "EXTERNAL_TABLE",
        "orders_per_client": "VIRTUAL_VIEW",
        "sales_by_product": "VIRTUAL_VIEW",
        "order_status_report": "VIRTUAL_VIEW",
    }
    config = _client(stack, "athena").get_work_group(WorkGroup="duffbeer-reports")["WorkGroup"][
        "Configuration"
    ]
    assert config["ResultConfiguration"] == {
        "OutputLocation": "s3://duffbeer-processed-orders/athena-results/",
        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
    }
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == 1024**3
    # Engine version 3 reads Iceberg v2 tables and FOR VERSION AS OF
    assert config["EngineVersion"]["SelectedEngineVersion"] == "Athena engine version 3"


def test_api_routes_proxy_to_orders_api_behind_an_api_key(stack: tuple[str, StackOutputs]) -> None:
    apigw = _client(stack, "apigateway")
    api_id = stack[1].api_id
    uri = (
        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
        f"{FN}duffbeer-orders-api/invocations"
    )
    routes = {}
    for resource in apigw.get_resources(restApiId=api_id)["items"]:
        if "GET" in resource.get("resourceMethods", {}):
            method = apigw.get_method(restApiId=api_id, resourceId=resource["id"], httpMethod="GET")
            integration = method["methodIntegration"]
            assert (integration["type"], integration["uri"]) == ("AWS_PROXY", uri)
            routes[resource["path"]] = method["apiKeyRequired"]
    assert routes == {
        "/orders/{client_id}": True,
        "/sales-by-product": True,
        "/order-status-report": True,
        "/daily-sales": True,
        "/top-clients": True,
        "/batches": True,
        "/status": True,
        "/health": False,
        "/openapi.json": False,
        "/dashboard": False,
        "/dashboard/app.js": False,
        "/dashboard/app.css": False,
        "/dashboard/chart.umd.min.js": False,
    }
    stage = apigw.get_stage(restApiId=api_id, stageName="v1")
    assert stage["methodSettings"]["*/*"]["throttlingRateLimit"] == 50.0
    assert stage["methodSettings"]["*/*"]["throttlingBurstLimit"] == 100
    [plan] = apigw.get_usage_plans()["items"]
    assert plan["apiStages"] == [{"apiId": api_id, "stage": "v1"}]
    assert [key["id"] for key in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [
        stack[1].api_key_id
    ]
    policy = json.loads(
        _client(stack, "lambda").get_policy(FunctionName="duffbeer-orders-api")["Policy"]
    )
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == (
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/GET/*"
    )


def test_failures_alarm_to_the_topic(stack: tuple[str, StackOutputs]) -> None:
    alarms = {
        alarm["AlarmName"]: alarm
        for alarm in _client(stack, "cloudwatch").describe_alarms()["MetricAlarms"]
    }
    assert sorted(alarms) == sorted(
        [
            "duffbeer-state-machine-failed",
            "duffbeer-state-machine-timedout",
            "duffbeer-state-machine-aborted",
            "duffbeer-start-etl-errors",
            "duffbeer-validate-orders-errors",
            "duffbeer-publish-batch-errors",
            "duffbeer-catalog-batch-errors",
            "duffbeer-clean-up-errors",
            "duffbeer-quarantine-batch-errors",
            "duffbeer-orders-api-errors",
            "duffbeer-rows-rejected",
            "duffbeer-cleanup-errors",
        ]
    )
    assert {alarm["AlarmActions"][0] for alarm in alarms.values()} == {TOPIC}
    failed = alarms["duffbeer-state-machine-failed"]
    assert (failed["Namespace"], failed["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert failed["Dimensions"] == [{"Name": "StateMachineArn", "Value": STATE_MACHINE}]
    api_errors = alarms["duffbeer-orders-api-errors"]
    assert (api_errors["Namespace"], api_errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert api_errors["Dimensions"] == [{"Name": "FunctionName", "Value": "duffbeer-orders-api"}]
    rejected = alarms["duffbeer-rows-rejected"]
    assert (rejected["Namespace"], rejected["MetricName"]) == ("DuffBeerOrders", "RowsRejected")
    assert rejected["Dimensions"] == [{"Name": "service", "Value": "duffbeer-publish-batch"}]
    cleanup = alarms["duffbeer-cleanup-errors"]
    assert (cleanup["Namespace"], cleanup["MetricName"]) == ("DuffBeerOrders", "CleanupErrors")
    assert cleanup["Dimensions"] == [{"Name": "service", "Value": "duffbeer-clean-up"}]


def test_operations_dashboard_shows_runs_rows_quarantine_glue_and_the_api(
    stack: tuple[str, StackOutputs],
) -> None:
    cloudwatch = _client(stack, "cloudwatch")
    described = cloudwatch.get_dashboard(DashboardName="duffbeer-operations")
    widgets = json.loads(described["DashboardBody"])["widgets"]
    charts = {w["properties"]["title"]: w["properties"] for w in widgets if w["type"] == "metric"}
    metrics = {
        title: [
            (m[0], m[1], dict(zip(m[2:-1:2], m[3:-1:2], strict=True))) for m in props["metrics"]
        ]
        for title, props in charts.items()
    }
    machine = {"StateMachineArn": STATE_MACHINE}
    assert metrics["Executions"][:3] == [
        ("AWS/States", "ExecutionsStarted", machine),
        ("AWS/States", "ExecutionsSucceeded", machine),
        ("AWS/States", "ExecutionsFailed", machine),
    ]
    # The same metric and dimensions the publish step emits and the rows alarm watches
    published = {"service": "duffbeer-publish-batch"}
    assert metrics["Rows per batch"] == [
        ("DuffBeerOrders", "RowsRead", published),
        ("DuffBeerOrders", "RowsValid", published),
        ("DuffBeerOrders", "RowsRejected", published),
    ]
    assert (
        "DuffBeerOrders",
        "QuarantinedFiles",
        {"service": "duffbeer-quarantine-batch"},
    ) in metrics["Files quarantined and batches published"]
    assert [m[2]["JobName"] for m in metrics["Glue run time"]] == [
        "duffbeer-transform-orders",
        "duffbeer-maintain-state",
        "duffbeer-maintain-tables",
    ]
    assert {m[1] for m in metrics["Glue run time"]} == {"glue.driver.aggregate.elapsedTime"}
    api = {"ApiName": "duffbeer-orders-api", "Stage": "v1"}
    assert ("AWS/ApiGateway", "Latency", api) in metrics["API latency"]
    assert ("AWS/ApiGateway", "5XXError", api) in metrics["API errors"]
    assert ("AWS/ApiGateway", "4XXError", api) in metrics["API errors"]
    [alarms] = [w["properties"]["alarms"] for w in widgets if w["type"] == "alarm"]
    assert f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:duffbeer-state-machine-failed" in alarms
    assert stack[1].operations_dashboard_url == (
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}"
        "#dashboards:name=duffbeer-operations"
    )


def test_glue_job_failures_reach_the_topic_through_eventbridge(
    stack: tuple[str, StackOutputs],
) -> None:
    events = _client(stack, "events")
    rule = events.describe_rule(Name="duffbeer-glue-job-failed")
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.glue"],
        "detail-type": ["Glue Job State Change"],
        "detail": {
            "jobName": [
                "duffbeer-transform-orders",
                "duffbeer-maintain-state",
                "duffbeer-maintain-tables",
            ],
            "state": ["FAILED", "TIMEOUT", "ERROR"],
        },
    }
    targets = events.list_targets_by_rule(Rule="duffbeer-glue-job-failed")["Targets"]
    assert [target["Arn"] for target in targets] == [TOPIC]
    policy = json.loads(
        _client(stack, "sns").get_topic_attributes(TopicArn=TOPIC)["Attributes"]["Policy"]
    )
    events_statement = next(
        s for s in policy["Statement"] if s["Sid"] == "GlueFailureRulePublishes"
    )
    assert events_statement["Principal"] == {"Service": "events.amazonaws.com"}


def test_roles_trust_their_service_and_carry_one_inline_policy(
    stack: tuple[str, StackOutputs],
) -> None:
    iam = _client(stack, "iam")
    services = {}
    for role in iam.list_roles()["Roles"]:
        trust = role["AssumeRolePolicyDocument"]
        services[role["RoleName"]] = trust["Statement"][0]["Principal"]["Service"]
        assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == [
            "least-privilege"
        ]
        assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []
    assert services == {
        "duffbeer-start-etl-role": "lambda.amazonaws.com",
        "duffbeer-validate-orders-role": "lambda.amazonaws.com",
        "duffbeer-publish-batch-role": "lambda.amazonaws.com",
        "duffbeer-catalog-batch-role": "lambda.amazonaws.com",
        "duffbeer-clean-up-role": "lambda.amazonaws.com",
        "duffbeer-quarantine-batch-role": "lambda.amazonaws.com",
        "duffbeer-orders-api-role": "lambda.amazonaws.com",
        "duffbeer-glue-role": "glue.amazonaws.com",
        "duffbeer-state-job-role": "glue.amazonaws.com",
        "duffbeer-states-role": "states.amazonaws.com",
    }
    api_policy = iam.get_role_policy(
        RoleName="duffbeer-orders-api-role", PolicyName="least-privilege"
    )
    sids = [statement["Sid"] for statement in api_policy["PolicyDocument"]["Statement"]]
    assert sids == [
        "WriteOwnLogs",
        "SendTraces",
        "QueryThroughWorkgroup",
        "ReadCatalog",
        "ReadState",
        "ListStateAndResults",
        "ListBatchHistory",
        "ReadBatchHistory",
        "LocateBucketForAthena",
        "WriteAthenaResults",
    ]
    # Both state jobs commit to exactly the state's Iceberg tables, and write the warehouse
    state_statements = {
        statement["Sid"]: statement
        for statement in iam.get_role_policy(
            RoleName="duffbeer-state-job-role", PolicyName="least-privilege"
        )["PolicyDocument"]["Statement"]
    }
    table = f"arn:aws:glue:{REGION}:{ACCOUNT}:table/duffbeer_reports/"
    assert state_statements["CommitStateTables"]["Action"] == [
        "glue:GetDatabase",
        "glue:GetTable",
        "glue:CreateTable",
        "glue:UpdateTable",
    ]
    assert state_statements["CommitStateTables"]["Resource"] == [
        f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog",
        f"arn:aws:glue:{REGION}:{ACCOUNT}:database/duffbeer_reports",
        f"{table}order_lines_current",
        f"{table}client_report",
        f"{table}client_orders",
        f"{table}product_daily",
        f"{table}status_daily",
        f"{table}spanning_order_cells",
        f"{table}orders_summary",
        f"{table}client_order_cells",
        f"{table}state_publications",
    ]
    assert state_statements["ReadAndWriteStateFiles"]["Resource"] == [
        "arn:aws:s3:::duffbeer-processed-orders/warehouse/*"
    ]
    assert state_statements["WriteJobLogs"]["Resource"][:2] == [
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-glue/jobs/duffbeer-maintain-state"
        ":log-stream:*",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-glue/jobs/duffbeer-maintain-tables"
        ":log-stream:*",
    ]


def test_start_execution_prints_then_starts_a_run_on_an_uploaded_object(
    stack: tuple[str, StackOutputs], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an order file in the input bucket
    _client(stack, "s3").put_object(
        Bucket="duffbeer-input-orders", Key="manual/orders.csv", Body=b"client_id\n1\n"
    )
    where = ["--endpoint-url", stack[0], "--region", REGION]
    # When the command prints the execution to start
    code = main(["start-execution", "manual/orders.csv", "--print-only", *where])
    out = capsys.readouterr().out
    assert code == 0
    name = out.split("Name: ", 1)[1].split("\n", 1)[0]
    document = json.loads(out.split("Input:\n", 1)[1].split("\n\n", 1)[0])
    # Then that name and input start an execution of the deployed state machine
    assert document["key"] == "manual/orders.csv"
    assert document["size"] == 12
    started = _client(stack, "stepfunctions").start_execution(
        stateMachineArn=STATE_MACHINE, name=name, input=json.dumps(document)
    )
    assert started["executionArn"] == (
        f"arn:aws:states:{REGION}:{ACCOUNT}:execution:duffbeer-orders-etl:{name}"
    )
    # And without --print-only the command starts one itself, with an input of that shape
    assert main(["start-execution", "manual/orders.csv", *where]) == 0
    out = capsys.readouterr().out
    arn = out.split("Started: ", 1)[1].strip()
    execution = _client(stack, "stepfunctions").describe_execution(executionArn=arn)
    assert json.loads(execution["input"])["key"] == "manual/orders.csv"
    assert arn.split(":execution:duffbeer-orders-etl:")[1].startswith(name.split("-manual-")[0])


def test_a_stopped_upkeep_trigger_is_started_again_by_the_next_deploy(moto_server: str) -> None:
    # Given the daily trigger of the tables' upkeep, stopped by hand after a deploy
    glue = boto3.client("glue", endpoint_url=moto_server, region_name="us-east-1")
    glue.create_job(
        Name="duffbeer-maintain-tables",
        Role="arn:aws:iam::123456789012:role/r",
        Command={"Name": "glueetl", "ScriptLocation": "s3://b/maintain_tables.py"},
    )
    definition = {
        "Type": "SCHEDULED",
        "Schedule": "cron(15 3 * * ? *)",
        "Actions": [{"JobName": "duffbeer-maintain-tables"}],
        "Description": "upkeep",
    }
    clients = Clients("us-east-1", moto_server)
    first, second = Reporter(io.StringIO()), Reporter(io.StringIO())
    ensure_trigger(clients, first, "duffbeer-maintain-tables-daily", definition, {})
    glue.stop_trigger(Name="duffbeer-maintain-tables-daily")
    # When the stack is deployed again
    ensure_trigger(clients, second, "duffbeer-maintain-tables-daily", definition, {})
    # Then the trigger runs again, and the deploy says it changed it
    trigger = glue.get_trigger(Name="duffbeer-maintain-tables-daily")["Trigger"]
    assert trigger["State"] == "ACTIVATED"
    assert second.count(Change.UPDATED) == 1
