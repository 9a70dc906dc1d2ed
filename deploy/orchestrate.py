"""The deploy and destroy sequences: every resource of the stack, in dependency order."""

from __future__ import annotations

from pathlib import Path

from deploy import artifacts, iam
from deploy.core import Clients, Reporter, aws_errors
from deploy.read_only import ReadOnlyClients
from deploy.resources import (
    analytics,
    api,
    compute,
    identity,
    monitoring,
    storage,
    upgrade,
    workflow,
)
from deploy.stack import (
    FUNCTIONS,
    METRICS_NAMESPACE,
    DeployOptions,
    StackArns,
    StackNames,
    StackOutputs,
)
from duffbeer import contract, naming
from workflows.definition import WorkflowConfig, definition_json

GLUE_SCRIPT = artifacts.PROJECT_DIR / "glue_jobs" / "transform_orders.py"
STATE_SCRIPT = artifacts.PROJECT_DIR / "glue_jobs" / "maintain_state.py"
MAINTENANCE_SCRIPT = artifacts.PROJECT_DIR / "glue_jobs" / "maintain_tables.py"
S3_TRIGGER_STATEMENT = "s3-input-bucket-invokes"
API_STATEMENT = "apigateway-invokes"


def _tags(options: DeployOptions, names: StackNames) -> dict[str, str]:
    return {"project": naming.PROJECT_TAG, "stack": names.stack, **dict(options.tags)}


def _tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def function_environment(key: str, names: StackNames, arns: StackArns) -> dict[str, str]:
    """The fixed environment of each function (the names its config dataclass reads)."""
    env = {
        "POWERTOOLS_SERVICE_NAME": names.function(key),
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "LOG_LEVEL": "INFO",
    }
    specific: dict[str, dict[str, str]] = {
        "start_etl": {"STATE_MACHINE_ARN": arns.state_machine},
        "validate_orders": {
            "MAX_FILE_BYTES": str(contract.DEFAULT_MAX_FILE_BYTES),
            "PROCESSED_BUCKET": names.processed_bucket,
        },
        "publish_batch": {"PROCESSED_BUCKET": names.processed_bucket},
        "catalog_batch": {
            "PROCESSED_BUCKET": names.processed_bucket,
            "GLUE_DATABASE": names.database,
        },
        "clean_up": {"PROCESSED_BUCKET": names.processed_bucket},
        "quarantine_batch": {"PROCESSED_BUCKET": names.processed_bucket},
        "orders_api": {
            "QUERY_BACKEND": "athena",
            "GLUE_DATABASE": names.database,
            "ATHENA_WORKGROUP": names.workgroup,
            "PROCESSED_BUCKET": names.processed_bucket,
        },
    }
    return {**env, **specific[key]}


def workflow_config(names: StackNames, arns: StackArns, options: DeployOptions) -> WorkflowConfig:
    return WorkflowConfig(
        state_machine_name=names.state_machine,
        role_arn=arns.role("states"),
        validate_function_arn=arns.function("validate_orders"),
        publish_function_arn=arns.function("publish_batch"),
        catalog_function_arn=arns.function("catalog_batch"),
        clean_up_function_arn=arns.function("clean_up"),
        quarantine_function_arn=arns.function("quarantine_batch"),
        glue_job_name=names.glue_job,
        state_job_name=names.state_job,
        processed_bucket=names.processed_bucket,
        database=names.database,
        failure_topic_arn=arns.topic,
        region=options.region,
        # The .sync wait outlives the job's own timeout so the job, not the wait, times out.
        glue_timeout_seconds=options.glue_timeout_minutes * 60 + 300,
    )


def _account(clients: Clients) -> str:
    with aws_errors("STS GetCallerIdentity (credentials)"):
        return str(clients.sts.get_caller_identity()["Account"])


def deploy_stack(
    options: DeployOptions, reporter: Reporter, clients: Clients | None = None
) -> StackOutputs:
    """Create or update every resource; a second run with the same code changes nothing."""
    clients = clients or Clients(options.region, options.endpoint_url, options.profile)
    names = options.names()
    arns = StackArns(names, _account(clients), options.region)
    tags = _tags(options, names)
    build_dir = Path(options.build_dir)

    reporter.section("SNS alert topic")
    topic_arn = monitoring.ensure_topic(clients, reporter, arns, _tag_list(tags))
    monitoring.ensure_email_subscriptions(clients, reporter, topic_arn, options.alert_emails)

    reporter.section("S3 buckets")
    storage.ensure_bucket(clients, reporter, options, arns, names.input_bucket, processed=False)
    storage.ensure_bucket(clients, reporter, options, arns, names.processed_bucket, processed=True)

    reporter.section("CloudWatch log groups")
    for group in names.log_groups:
        monitoring.ensure_log_group(clients, reporter, group, options.log_retention_days, tags)

    reporter.section("IAM roles")
    role_arns = {
        role: identity.ensure_role(
            clients, reporter, role, trust=trust, policy=policy, tags=_tag_list(tags)
        )
        for role, (trust, policy) in iam.role_documents(arns).items()
    }

    reporter.section("Lambda layer and functions")
    layer_arn = compute.ensure_layer(
        clients, reporter, names.layer, artifacts.build_layer_zip(build_dir)
    )
    function_arns: dict[str, str] = {}
    for spec in FUNCTIONS:
        desired = compute.function_configuration(
            spec,
            names.function(spec.key),
            role_arns[names.role(spec.key)],
            layer_arn,
            function_environment(spec.key, names, arns),
        )
        zip_path = artifacts.build_lambda_zip(spec.package, build_dir)
        function_arns[spec.key] = compute.ensure_function(
            clients, reporter, desired, zip_path, tags
        )

    reporter.section("Glue jobs")
    libs_uri = analytics.ensure_artifact(
        clients,
        reporter,
        names.processed_bucket,
        f"{analytics.GLUE_ARTIFACTS_PREFIX}duffbeer_libs.zip",
        artifacts.build_glue_libs_zip(build_dir),
    )
    for job_name, script, role, definition in (
        (names.glue_job, GLUE_SCRIPT, "glue", analytics.transform_job_definition),
        (names.state_job, STATE_SCRIPT, "state_job", analytics.state_job_definition),
        (
            names.maintenance_job,
            MAINTENANCE_SCRIPT,
            "state_job",
            analytics.maintenance_job_definition,
        ),
    ):
        script_uri = analytics.ensure_artifact(
            clients,
            reporter,
            names.processed_bucket,
            f"{analytics.GLUE_ARTIFACTS_PREFIX}{script.name}",
            script,
        )
        analytics.ensure_job(
            clients,
            reporter,
            job_name,
            definition(names, options, role_arns[names.role(role)], script_uri, libs_uri),
            tags,
        )

    analytics.ensure_trigger(
        clients,
        reporter,
        names.maintenance_trigger,
        analytics.trigger_definition(names, options),
        tags,
    )

    reporter.section("Resources of earlier releases")
    upgrade.remove_earlier_release(clients, reporter, names)

    reporter.section("Glue database and Athena workgroup")
    analytics.ensure_catalog_schema(clients, reporter, names.database, names.processed_bucket)
    analytics.ensure_workgroup(
        clients,
        reporter,
        names.workgroup,
        analytics.workgroup_configuration(names, options),
        _tag_list(tags),
    )

    reporter.section("Step Functions state machine")
    state_machine_arn = workflow.ensure_state_machine(
        clients,
        reporter,
        name=names.state_machine,
        arn=arns.state_machine,
        definition=definition_json(workflow_config(names, arns, options)),
        role_arn=role_arns[names.role("states")],
        logging=workflow.logging_configuration(arns.log_group(names.state_machine_log_group)),
        tags=_tag_list(tags, "key", "value"),
    )

    reporter.section("S3 trigger")
    compute.ensure_permission(
        clients,
        reporter,
        names.function("start_etl"),
        statement_id=S3_TRIGGER_STATEMENT,
        principal="s3.amazonaws.com",
        source_arn=arns.bucket(names.input_bucket),
        source_account=arns.account,
    )
    compute.ensure_failure_destination(clients, reporter, names.function("start_etl"), topic_arn)
    storage.ensure_notification(clients, reporter, names.input_bucket, function_arns["start_etl"])

    reporter.section("REST API")
    api_outputs = api.ensure_api(
        clients, reporter, names, options, function_arn=function_arns["orders_api"], tags=tags
    )
    compute.ensure_permission(
        clients,
        reporter,
        names.function("orders_api"),
        statement_id=API_STATEMENT,
        principal="apigateway.amazonaws.com",
        source_arn=arns.execute_api(api_outputs.api_id),
        source_account=arns.account,
    )

    reporter.section("Alarms")
    monitoring.ensure_alarms(clients, reporter, arns)
    monitoring.ensure_glue_failure_rule(clients, reporter, arns, _tag_list(tags))
    reporter.section("Operations dashboard")
    dashboard_url = monitoring.ensure_dashboard(clients, reporter, arns)

    return StackOutputs(
        region=options.region,
        account=arns.account,
        input_bucket=names.input_bucket,
        processed_bucket=names.processed_bucket,
        state_machine_arn=state_machine_arn,
        function_arns=function_arns,
        glue_job_name=names.glue_job,
        state_job_name=names.state_job,
        maintenance_job_name=names.maintenance_job,
        database=names.database,
        workgroup=names.workgroup,
        topic_arn=topic_arn,
        api_id=api_outputs.api_id,
        api_url=api_outputs.url,
        api_key_id=api_outputs.api_key_id,
        layer_version_arn=layer_arn,
        operations_dashboard_url=dashboard_url,
    )


def diff_stack(options: DeployOptions, reporter: Reporter) -> None:
    """Run the deploy sequence with clients that only read: `reporter` gets what a deploy
    would create, change or leave alone, decided by the same code that deploys."""
    clients = ReadOnlyClients(options.region, options.endpoint_url, options.profile)
    deploy_stack(options, reporter, clients)


# What deploy itself uploads to the processed bucket: not data, removed without asking.
_PROCESSED_OWNED = (naming.ARTIFACTS_PREFIX, naming.ATHENA_RESULTS_PREFIX)


def data_to_delete(options: DeployOptions) -> list[storage.BucketData]:
    """What `destroy_stack(..., delete_data=True)` would delete from the stack's buckets."""
    clients = Clients(options.region, options.endpoint_url, options.profile)
    names = options.names()
    return [
        storage.data_held(clients, names.input_bucket),
        storage.data_held(clients, names.processed_bucket, _PROCESSED_OWNED),
    ]


def destroy_stack(options: DeployOptions, reporter: Reporter, *, delete_data: bool) -> bool:
    """Remove everything deploy_stack creates. True when nothing is left (buckets included)."""
    clients = Clients(options.region, options.endpoint_url, options.profile)
    names = options.names()
    arns = StackArns(names, _account(clients), options.region)

    reporter.section("Alarms and rules")
    monitoring.remove_alarms(clients, reporter, names)
    monitoring.remove_glue_failure_rule(clients, reporter, names)
    monitoring.remove_dashboard(clients, reporter, names)
    reporter.section("REST API")
    api.remove_api(clients, reporter, names)
    reporter.section("Step Functions state machine")
    workflow.remove_state_machine(clients, reporter, names.state_machine, arns.state_machine)
    reporter.section("Glue and Athena")
    analytics.remove_workgroup(clients, reporter, names.workgroup)
    analytics.remove_database(clients, reporter, names.database)
    analytics.remove_trigger(clients, reporter, names.maintenance_trigger)
    for job in (names.glue_job, names.state_job, names.maintenance_job):
        analytics.remove_job(clients, reporter, job)
    reporter.section("Lambda functions and layer")
    for spec in FUNCTIONS:
        compute.remove_function(clients, reporter, names.function(spec.key))
    compute.remove_layer(clients, reporter, names.layer)
    reporter.section("IAM roles")
    for role in names.roles:
        identity.remove_role(clients, reporter, role)
    reporter.section("CloudWatch log groups")
    for group in names.log_groups:
        monitoring.remove_log_group(clients, reporter, group)
    reporter.section("S3 buckets")
    gone = [
        storage.remove_bucket(clients, reporter, names.input_bucket, delete_data=delete_data),
        storage.remove_bucket(
            clients,
            reporter,
            names.processed_bucket,
            delete_data=delete_data,
            owned_prefixes=_PROCESSED_OWNED,
        ),
    ]
    reporter.section("SNS alert topic")
    monitoring.remove_topic(clients, reporter, arns)
    return all(gone)
