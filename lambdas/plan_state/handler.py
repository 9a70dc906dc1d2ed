"""Lambda entry point of plan_state (the state machine's PlanState step)."""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, settings, utc
from duffbeer.steps import StepEvent, parse_event
from duffbeer.telemetry import emit, entry_point, logger
from lambdas.plan_state.config import PlanConfig
from lambdas.plan_state.plan import plan_state

config = settings.loader(PlanConfig)


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = parse_event(event, StepEvent)
    logger.append_keys(**step.log_keys)
    result = plan_state(
        bucket=config().processed_bucket,
        client=aws.client("s3"),
        run_id=step.run_id,
        now=utc.now(),
        settings=config().settings,
        token=uuid.uuid4().hex[:8],
    )
    emit(result.measures())
    logger.info("State plan", extra=result.as_dict())
    return result.as_dict()
