"""Lambda entry point of publish_state (the state machine's PublishState step)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming
from lambdas.publish_state.config import PublishStateConfig
from lambdas.publish_state.publish import PUBLISHED, publish_state

logger = Logger()
# Deploy sets POWERTOOLS_METRICS_NAMESPACE; the default keeps metrics valid without it.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or naming.METRICS_NAMESPACE
)


@lru_cache(maxsize=1)
def config() -> PublishStateConfig:
    return PublishStateConfig.from_env()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config()
    logger.append_keys(batch_id=event["batch_id"], execution_name=event["run_id"])
    result = publish_state(
        version=event["version"],
        plan_key=event["plan_key"],
        bucket=settings.processed_bucket,
        s3=aws.client("s3"),
        glue=aws.client("glue"),
        versions_database=settings.versions_database,
        now=datetime.now(UTC),
        reader_grace=timedelta(seconds=settings.reader_grace_seconds),
    )
    published = int(result.outcome == PUBLISHED)
    metrics.add_metric(name="StateVersionsPublished", unit=MetricUnit.Count, value=published)
    metrics.add_metric(name="CurrentLines", unit=MetricUnit.Count, value=result.lines)
    logger.info("State version published", extra=result.as_dict())
    return result.as_dict()
