"""--alert-email: the address is subscribed to the alerts topic once, through the real CLI path."""

from __future__ import annotations

import io

import boto3
import pytest

from deploy.core import Change, Clients, Reporter
from deploy.create_workflow import CliArgs
from deploy.resources.monitoring import ensure_email_subscriptions
from duffbeer.errors import ConfigurationError

pytestmark = pytest.mark.functional


def test_alert_email_is_parsed_and_checked() -> None:
    args = CliArgs.from_args(
        ["--region", "eu-west-1", "--alert-email", "ops@duff.example", "--alert-email", "b@x.io"],
        {},
    )
    assert args.options.alert_emails == ("ops@duff.example", "b@x.io")
    with pytest.raises(ConfigurationError, match="not an email address"):
        CliArgs.from_args(["--region", "eu-west-1", "--alert-email", "ops"], {})


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
