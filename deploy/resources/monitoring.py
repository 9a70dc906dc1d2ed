"""SNS alert topic, CloudWatch log groups, alarms and operations dashboard, Glue failure rule."""

from __future__ import annotations

import json
from typing import Any

from deploy import iam
from deploy.core import Change, Clients, Reporter, aws_errors, canonical, get_or_none
from deploy.stack import API_STAGE, FUNCTIONS, METRICS_NAMESPACE, StackArns, StackNames

GLUE_FAILED_STATES = ("FAILED", "TIMEOUT", "ERROR")


def ensure_topic(
    clients: Clients, reporter: Reporter, arns: StackArns, tags: list[dict[str, str]]
) -> str:
    sns = clients.sns
    name = arns.names.topic
    with aws_errors(f"SNS topic {name}"):
        existing = get_or_none(lambda: sns.get_topic_attributes(TopicArn=arns.topic))
        if existing:
            arn = arns.topic
            reporter.record("sns topic", name, Change.UNCHANGED)
        else:
            arn = str(sns.create_topic(Name=name, Tags=tags)["TopicArn"])
            reporter.record("sns topic", name, Change.CREATED)
        desired = iam.topic_policy(arns)
        current = existing and existing["Attributes"].get("Policy")
        if current and canonical(current) == canonical(desired):
            reporter.record("sns topic policy", name, Change.UNCHANGED)
        else:
            sns.set_topic_attributes(
                TopicArn=arn, AttributeName="Policy", AttributeValue=canonical(desired)
            )
            reporter.record(
                "sns topic policy", name, Change.UPDATED if existing else Change.CREATED
            )
    return arn


def ensure_email_subscriptions(
    clients: Clients, reporter: Reporter, topic_arn: str, addresses: tuple[str, ...]
) -> None:
    """Subscribe each address to the alerts topic once (AWS emails a confirmation link;
    the subscription stays pending until it is clicked)."""
    if not addresses:
        return
    sns = clients.sns
    with aws_errors(f"SNS subscriptions of {topic_arn}"):
        existing = {
            subscription["Endpoint"].lower()
            for page in sns.get_paginator("list_subscriptions_by_topic").paginate(
                TopicArn=topic_arn
            )
            for subscription in page.get("Subscriptions", [])
            if subscription.get("Protocol") == "email"
        }
        for address in addresses:
            if address.lower() in existing:
                reporter.record("sns email subscription", address, Change.UNCHANGED)
                continue
            sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=address)
            reporter.record(
                "sns email subscription", address, Change.CREATED, "confirmation emailed"
            )


def remove_topic(clients: Clients, reporter: Reporter, arns: StackArns) -> None:
    with aws_errors(f"SNS topic {arns.names.topic}"):
        if get_or_none(lambda: clients.sns.get_topic_attributes(TopicArn=arns.topic)) is None:
            reporter.record("sns topic", arns.names.topic, Change.ABSENT)
            return
        clients.sns.delete_topic(TopicArn=arns.topic)
        reporter.record("sns topic", arns.names.topic, Change.DELETED)


def ensure_log_group(
    clients: Clients, reporter: Reporter, name: str, retention_days: int, tags: dict[str, str]
) -> None:
    logs = clients.logs
    with aws_errors(f"log group {name}"):
        found = [
            group
            for group in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
            if group["logGroupName"] == name
        ]
        if not found:
            logs.create_log_group(logGroupName=name, tags=tags)
            logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
            reporter.record("log group", name, Change.CREATED, f"{retention_days} days")
        elif found[0].get("retentionInDays") != retention_days:
            logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
            reporter.record("log group", name, Change.UPDATED, f"{retention_days} days")
        else:
            reporter.record("log group", name, Change.UNCHANGED)


def remove_log_group(clients: Clients, reporter: Reporter, name: str) -> None:
    with aws_errors(f"log group {name}"):
        if get_or_none(lambda: clients.logs.delete_log_group(logGroupName=name)) is None:
            reporter.record("log group", name, Change.ABSENT)
        else:
            reporter.record("log group", name, Change.DELETED)


def alarm_specs(arns: StackArns) -> list[dict[str, Any]]:
    """Every alarm of the stack as PutMetricAlarm parameters: any failure notifies the topic."""
    names = arns.names
    common = {
        "Statistic": "Sum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        # No data means nothing ran, which is not a failure.
        "TreatMissingData": "notBreaching",
        "AlarmActions": [arns.topic],
        "ActionsEnabled": True,
    }
    specs = [
        {
            "AlarmName": alarm,
            "AlarmDescription": f"{names.state_machine}: {metric} >= 1 in 5 minutes",
            "Namespace": "AWS/States",
            "MetricName": metric,
            "Dimensions": [{"Name": "StateMachineArn", "Value": arns.state_machine}],
            **common,
        }
        for metric, alarm in names.state_machine_alarms.items()
    ]
    specs += [
        {
            "AlarmName": names.lambda_alarms[spec.key],
            "AlarmDescription": f"{names.function(spec.key)}: Errors >= 1 in 5 minutes",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": names.function(spec.key)}],
            **common,
        }
        for spec in FUNCTIONS
    ]
    # Rejected rows never fail a batch below the threshold, so they get their own alarm:
    # publish_batch emits RowsRejected (EMF, dimension `service` = the function name).
    specs.append(
        {
            "AlarmName": names.rows_rejected_alarm,
            "AlarmDescription": "orders rows rejected by the data contract >= 1 in 5 minutes",
            "Namespace": METRICS_NAMESPACE,
            "MetricName": "RowsRejected",
            "Dimensions": [{"Name": "service", "Value": names.function("publish_batch")}],
            **common,
        }
    )
    # Leftovers of a failed clean-up never fail a batch (readers cannot see them), so they
    # alarm on clean_up's CleanupErrors metric instead.
    specs.append(
        {
            "AlarmName": names.cleanup_errors_alarm,
            "AlarmDescription": "superseded runs not deleted >= 1 in 5 minutes",
            "Namespace": METRICS_NAMESPACE,
            "MetricName": "CleanupErrors",
            "Dimensions": [{"Name": "service", "Value": names.function("clean_up")}],
            **common,
        }
    )
    return specs


_ALARM_FIELDS = (
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "AlarmActions",
    "ActionsEnabled",
)


def ensure_alarms(clients: Clients, reporter: Reporter, arns: StackArns) -> None:
    cloudwatch = clients.cloudwatch
    specs = alarm_specs(arns)
    with aws_errors("CloudWatch alarms"):
        current = {
            alarm["AlarmName"]: alarm
            for alarm in cloudwatch.describe_alarms(
                AlarmNames=[spec["AlarmName"] for spec in specs]
            )["MetricAlarms"]
        }
    for spec in specs:
        name = spec["AlarmName"]
        existing = current.get(name)
        if existing and all(
            canonical(existing.get(key)) == canonical(spec[key]) for key in _ALARM_FIELDS
        ):
            reporter.record("cloudwatch alarm", name, Change.UNCHANGED)
            continue
        with aws_errors(f"CloudWatch alarm {name}"):
            cloudwatch.put_metric_alarm(**spec)
        reporter.record("cloudwatch alarm", name, Change.UPDATED if existing else Change.CREATED)


def remove_alarms(clients: Clients, reporter: Reporter, names: StackNames) -> None:
    with aws_errors("CloudWatch alarms"):
        existing = {
            alarm["AlarmName"]
            for alarm in clients.cloudwatch.describe_alarms(AlarmNames=list(names.alarms))[
                "MetricAlarms"
            ]
        }
        if existing:
            clients.cloudwatch.delete_alarms(AlarmNames=sorted(existing))
    for name in names.alarms:
        reporter.record(
            "cloudwatch alarm", name, Change.DELETED if name in existing else Change.ABSENT
        )


def glue_failure_pattern(*job_names: str) -> dict[str, Any]:
    return {
        "source": ["aws.glue"],
        "detail-type": ["Glue Job State Change"],
        "detail": {"jobName": list(job_names), "state": list(GLUE_FAILED_STATES)},
    }


GLUE_FAILURE_RULE_DESCRIPTION = (
    "A Glue job of the stack (transform, state merge, tables' upkeep) failed, timed out or errored"
)


def ensure_glue_failure_rule(
    clients: Clients, reporter: Reporter, arns: StackArns, tags: list[dict[str, str]]
) -> None:
    events = clients.events
    name = arns.names.glue_failure_rule
    pattern = glue_failure_pattern(
        arns.names.glue_job, arns.names.state_job, arns.names.maintenance_job
    )
    with aws_errors(f"EventBridge rule {name}"):
        current = get_or_none(lambda: events.describe_rule(Name=name))
        if (
            current
            and canonical(current.get("EventPattern", "{}")) == canonical(pattern)
            and current.get("State") == "ENABLED"
            and current.get("Description") == GLUE_FAILURE_RULE_DESCRIPTION
        ):
            reporter.record("eventbridge rule", name, Change.UNCHANGED)
        else:
            events.put_rule(
                Name=name,
                EventPattern=json.dumps(pattern),
                State="ENABLED",
                Description=GLUE_FAILURE_RULE_DESCRIPTION,
                Tags=tags,
            )
            reporter.record("eventbridge rule", name, Change.UPDATED if current else Change.CREATED)
        # A rule just created has no targets yet.
        targets = events.list_targets_by_rule(Rule=name)["Targets"] if current else []
        if [target["Arn"] for target in targets] == [arns.topic]:
            reporter.record("eventbridge target", name, Change.UNCHANGED)
        else:
            events.put_targets(Rule=name, Targets=[{"Id": "alert-topic", "Arn": arns.topic}])
            reporter.record(
                "eventbridge target", name, Change.UPDATED if targets else Change.CREATED
            )


def remove_glue_failure_rule(clients: Clients, reporter: Reporter, names: StackNames) -> None:
    events = clients.events
    name = names.glue_failure_rule
    with aws_errors(f"EventBridge rule {name}"):
        if get_or_none(lambda: events.describe_rule(Name=name)) is None:
            reporter.record("eventbridge rule", name, Change.ABSENT)
            return
        target_ids = [target["Id"] for target in events.list_targets_by_rule(Rule=name)["Targets"]]
        if target_ids:
            events.remove_targets(Rule=name, Ids=target_ids)
        events.delete_rule(Name=name)
        reporter.record("eventbridge rule", name, Change.DELETED)


def dashboard_console_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={name}"


def _metric_widget(
    title: str, metrics: list[list[Any]], region: str, *, stat: str = "Sum", y: int, x: int
) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stacked": False,
            "stat": stat,
            "period": 300,
            "metrics": metrics,
        },
    }


def dashboard_body(arns: StackArns) -> dict[str, Any]:
    """The operations dashboard: what ran, what it read, what failed, and how the API does."""
    names = arns.names
    region = arns.region
    machine = ["StateMachineArn", arns.state_machine]
    published = ["service", names.function("publish_batch")]
    quarantined = ["service", names.function("quarantine_batch")]
    api_service = ["service", names.function("orders_api")]
    api = ["ApiName", names.api, "Stage", API_STAGE]
    # Glue's job metrics (--enable-metrics): elapsed time of each run, all runs together.
    glue = "glue.driver.aggregate.elapsedTime"
    executions = [
        ["AWS/States", metric, *machine, {"label": label}]
        for metric, label in (
            ("ExecutionsStarted", "started"),
            ("ExecutionsSucceeded", "succeeded"),
            ("ExecutionsFailed", "failed"),
            ("ExecutionsTimedOut", "timed out"),
            ("ExecutionsAborted", "aborted"),
        )
    ]
    rows = [
        [METRICS_NAMESPACE, metric, *published, {"label": label}]
        for metric, label in (
            ("RowsRead", "read"),
            ("RowsValid", "valid"),
            ("RowsRejected", "rejected"),
        )
    ]
    files = [
        [METRICS_NAMESPACE, "QuarantinedFiles", *quarantined, {"label": "quarantined files"}],
        [METRICS_NAMESPACE, "BatchesPublished", *published, {"label": "batches published"}],
    ]
    glue_time = [
        ["Glue", glue, "JobName", job, "JobRunId", "ALL", "Type", "count", {"label": label}]
        for job, label in (
            (names.glue_job, "transform (ms)"),
            (names.state_job, "merge (ms)"),
            (names.maintenance_job, "tables' upkeep (ms)"),
        )
    ]
    latency = [
        ["AWS/ApiGateway", "Latency", *api, {"stat": "p50", "label": "latency p50 (ms)"}],
        ["AWS/ApiGateway", "Latency", *api, {"stat": "p99", "label": "latency p99 (ms)"}],
        [
            "AWS/ApiGateway",
            "IntegrationLatency",
            *api,
            {"stat": "p99", "label": "Lambda integration p99 (ms)"},
        ],
    ]
    errors = [
        ["AWS/ApiGateway", "4XXError", *api, {"label": "4xx (incl. wrong keys)"}],
        ["AWS/ApiGateway", "5XXError", *api, {"label": "5xx"}],
        [
            "AWS/Lambda",
            "Errors",
            "FunctionName",
            names.function("orders_api"),
            {"label": "Lambda errors"},
        ],
        [METRICS_NAMESPACE, "ReportQueryFailed", *api_service, {"label": "queries failed"}],
        [METRICS_NAMESPACE, "ReportQueryTimeout", *api_service, {"label": "queries timed out"}],
    ]
    alarms = [
        f"arn:{arns.partition}:cloudwatch:{region}:{arns.account}:alarm:{alarm}"
        for alarm in names.alarms
    ]
    return {
        "widgets": [
            {
                "type": "text",
                "x": 0,
                "y": 0,
                "width": 24,
                "height": 2,
                "properties": {
                    "markdown": f"## {names.stack}: orders pipeline operations\n"
                    f"State machine `{names.state_machine}`, Glue jobs `{names.glue_job}`, "
                    f"`{names.state_job}` and `{names.maintenance_job}` (daily), API "
                    f"`{names.api}` (stage {API_STAGE}). Alerts go to the SNS topic "
                    f"`{names.topic}`; failed files to `quarantine/` in "
                    f"`{names.processed_bucket}`."
                },
            },
            _metric_widget("Executions", executions, region, x=0, y=2),
            _metric_widget("Rows per batch", rows, region, x=12, y=2),
            _metric_widget("Files quarantined and batches published", files, region, x=0, y=8),
            _metric_widget("Glue run time", glue_time, region, stat="Maximum", x=12, y=8),
            _metric_widget("API latency", latency, region, stat="Average", x=0, y=14),
            _metric_widget("API errors", errors, region, x=12, y=14),
            {
                "type": "alarm",
                "x": 0,
                "y": 20,
                "width": 24,
                "height": 4,
                "properties": {"title": "Alarms", "alarms": alarms},
            },
        ]
    }


def ensure_dashboard(clients: Clients, reporter: Reporter, arns: StackArns) -> str:
    """Create or update the operations dashboard; its console URL."""
    cloudwatch = clients.cloudwatch
    name = arns.names.operations_dashboard
    desired = dashboard_body(arns)
    with aws_errors(f"CloudWatch dashboard {name}"):
        current = get_or_none(lambda: cloudwatch.get_dashboard(DashboardName=name))
        if current and canonical(current.get("DashboardBody", "{}")) == canonical(desired):
            reporter.record("cloudwatch dashboard", name, Change.UNCHANGED)
        else:
            cloudwatch.put_dashboard(DashboardName=name, DashboardBody=json.dumps(desired))
            reporter.record(
                "cloudwatch dashboard", name, Change.UPDATED if current else Change.CREATED
            )
    return dashboard_console_url(arns.region, name)


def remove_dashboard(clients: Clients, reporter: Reporter, names: StackNames) -> None:
    name = names.operations_dashboard
    with aws_errors(f"CloudWatch dashboard {name}"):
        if get_or_none(lambda: clients.cloudwatch.get_dashboard(DashboardName=name)) is None:
            reporter.record("cloudwatch dashboard", name, Change.ABSENT)
            return
        clients.cloudwatch.delete_dashboards(DashboardNames=[name])
        reporter.record("cloudwatch dashboard", name, Change.DELETED)
