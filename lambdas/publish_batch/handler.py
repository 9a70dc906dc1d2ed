"""Lambda entry point of publish_batch (the state machine's Store step)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, settings, utc
from duffbeer.steps import StepEvent, parse_event
from duffbeer.telemetry import emit, entry_point, logger
from lambdas.publish_batch.config import PublishConfig
from lambdas.publish_batch.publish import publish_run

config = settings.loader(PublishConfig)


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = parse_event(event, StepEvent)
    logger.append_keys(**step.log_keys)
    result = publish_run(
        batch_id=step.batch_id,
        run_id=step.run_id,
        bucket=config().processed_bucket,
        client=aws.client("s3"),
        now=utc.now(),
    )
    emit(result.measures())
    logger.info("Batch publication decided", extra=result.as_dict())
    return result.as_dict()
