"""Lambda entry point of publish_state (the state machine's PublishState step)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, settings, utc
from duffbeer.steps import parse_event
from duffbeer.telemetry import emit, entry_point, logger
from lambdas.publish_state.config import PublishStateConfig
from lambdas.publish_state.publish import PublishStateEvent, publish_state

config = settings.loader(PublishStateConfig)


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = parse_event(event, PublishStateEvent)
    logger.append_keys(**step.log_keys)
    result = publish_state(
        version=step.version,
        plan_key=step.plan_key,
        bucket=config().processed_bucket,
        s3=aws.client("s3"),
        glue=aws.client("glue"),
        versions_database=config().versions_database,
        now=utc.now(),
        reader_grace=timedelta(seconds=config().reader_grace_seconds),
    )
    emit(result.measures())
    logger.info("State version published", extra=result.as_dict())
    return result.as_dict()
