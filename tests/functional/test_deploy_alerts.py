"""Alerts: --alert-email subscribes once (real CLI path); the Glue failure rule covers every job."""

from __future__ import annotations

import io
import json

import boto3
import pytest

from deploy.core import Change, Clients, Reporter
from deploy.create_workflow import CliArgs
from deploy.resources.monitoring import ensure_email_subscriptions, ensure_glue_failure_rule
from deploy.stack import StackArns, StackNames

pytestmark = pytest.mark.functional


def test_alert_email_is_parsed_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    args = CliArgs.from_args(
        [
            "deploy",
            "--region",
            "eu-west-1",
            "--alert-email",
            "ops@duff.example",
            "--alert-email",
            "b@x.io",
        ],
        {},
    )
    assert args.options.alert_emails == ("ops@duff.example", "b@x.io")
    # A malformed address is a usage error (exit status 2)
    with pytest.raises(SystemExit) as raised:
        CliArgs.from_args(["deploy", "--region", "eu-west-1", "--alert-email", "ops"], {})
    assert raised.value.code == 2
    assert "--alert-email 'ops' is not an email address" in capsys.readouterr().err


def test_each_address_is_subscribed_once(moto_server: str) -> None:
    # Given the alerts topic
    sns = boto3.client("sns", endpoint_url=moto_server, region_name="us-east-1")
    topic = sns.create_topic(Name="duffbeer-alerts")["TopicArn"]
    clients = Clients("us-east-1", moto_server)

    # When deploy subscribes an address, twice (a second deploy)
    first, second = Reporter(out=io.StringIO()), Reporter(out=io.StringIO())
    ensure_email_subscriptions(clients, first, topic, ("ops@duff.example",))
    ensure_email_subscriptions(clients, second, topic, ("OPS@duff.example",))

    # Then the topic has exactly one email subscription for it
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [
        ("email", "ops@duff.example")
    ]
    assert (first.count(Change.CREATED), second.count(Change.UNCHANGED)) == (1, 1)


def test_glue_failure_rule_of_an_older_deploy_gains_the_upkeep_job(moto_server: str) -> None:
    # Given the rule as a deploy before the table upkeep job left it: two jobs, to the topic
    events = boto3.client("events", endpoint_url=moto_server, region_name="us-east-1")
    topic = "arn:aws:sns:us-east-1:123456789012:duffbeer-alerts"
    events.put_rule(
        Name="duffbeer-glue-job-failed",
        EventPattern=json.dumps(
            {
                "source": ["aws.glue"],
                "detail-type": ["Glue Job State Change"],
                "detail": {
                    "jobName": ["duffbeer-transform-orders", "duffbeer-maintain-state"],
                    "state": ["FAILED", "TIMEOUT", "ERROR"],
                },
            }
        ),
        State="ENABLED",
    )
    events.put_targets(
        Rule="duffbeer-glue-job-failed", Targets=[{"Id": "alert-topic", "Arn": topic}]
    )
    clients = Clients("us-east-1", moto_server)
    arns = StackArns(StackNames.build(), "123456789012", "us-east-1")

    # When deploy ensures the rule, twice
    first, second = Reporter(out=io.StringIO()), Reporter(out=io.StringIO())
    ensure_glue_failure_rule(clients, first, arns, [])
    ensure_glue_failure_rule(clients, second, arns, [])

    # Then a failure of any of the three Glue jobs reaches the same topic
    rule = events.describe_rule(Name="duffbeer-glue-job-failed")
    assert rule["State"] == "ENABLED"
    assert rule["Description"] == (
        "A Glue job of the stack (transform, state merge, tables' upkeep) failed, timed out "
        "or errored"
    )
    assert json.loads(rule["EventPattern"])["detail"] == {
        "jobName": [
            "duffbeer-transform-orders",
            "duffbeer-maintain-state",
            "duffbeer-maintain-tables",
        ],
        "state": ["FAILED", "TIMEOUT", "ERROR"],
    }
    targets = events.list_targets_by_rule(Rule="duffbeer-glue-job-failed")["Targets"]
    assert [(t["Id"], t["Arn"]) for t in targets] == [("alert-topic", topic)]
    # ... the first deploy updated the rule only, the second changed nothing
    assert [(kind, change) for kind, _, change in first.changes] == [
        ("eventbridge rule", Change.UPDATED),
        ("eventbridge target", Change.UNCHANGED),
    ]
    assert second.count(Change.UNCHANGED) == 2
    assert len(second.changes) == 2
