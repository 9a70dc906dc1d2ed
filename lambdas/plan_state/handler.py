"""Lambda entry point of plan_state (the state machine's PlanState step)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming
from lambdas.plan_state.config import PlanConfig
from lambdas.plan_state.plan import plan_state

logger = Logger()
# Deploy sets POWERTOOLS_METRICS_NAMESPACE; the default keeps metrics valid without it.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or naming.METRICS_NAMESPACE
)


@lru_cache(maxsize=1)
def config() -> PlanConfig:
    return PlanConfig.from_env()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config()
    logger.append_keys(batch_id=event["batch_id"], execution_name=event["run_id"])
    result = plan_state(
        bucket=settings.processed_bucket,
        client=aws.client("s3"),
        run_id=event["run_id"],
        now=datetime.now(UTC),
        settings=settings.settings,
        token=uuid.uuid4().hex[:8],
    )
    metrics.add_metric(name="StateMergesPlanned", unit=MetricUnit.Count, value=int(result.changed))
    logger.info("State plan", extra=result.as_dict())
    return result.as_dict()
