"""Lambda entry point of clean_up (the state machine's CleanUp step)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, settings, utc
from duffbeer.steps import StepEvent, parse_event
from duffbeer.telemetry import emit, entry_point, logger
from lambdas.clean_up.cleanup import Grace, clean_up
from lambdas.clean_up.config import CleanUpConfig

config = settings.loader(CleanUpConfig)


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = parse_event(event, StepEvent)
    logger.append_keys(**step.log_keys)
    grace = Grace(
        reader=timedelta(seconds=config().reader_grace_seconds),
        orphan=timedelta(seconds=config().orphan_grace_seconds),
    )
    result = clean_up(
        batch_id=step.batch_id,
        bucket=config().processed_bucket,
        s3=aws.client("s3"),
        now=utc.now(),
        grace=grace,
    )
    emit(result.measures())
    if result.errors:
        logger.error("Some objects could not be cleaned up", extra={"errors": result.errors})
    logger.info("Clean-up done", extra=result.as_dict())
    return result.as_dict()
