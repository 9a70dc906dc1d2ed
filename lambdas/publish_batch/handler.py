"""Lambda entry point of publish_batch (the state machine's Store step)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming
from duffbeer import manifest as manifests
from lambdas.publish_batch.config import PublishConfig
from lambdas.publish_batch.publish import publish_run

logger = Logger()
# Deploy sets POWERTOOLS_METRICS_NAMESPACE; the default keeps metrics valid without it.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or naming.METRICS_NAMESPACE
)


@lru_cache(maxsize=1)
def config() -> PublishConfig:
    return PublishConfig.from_env()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config()
    logger.append_keys(batch_id=event["batch_id"], execution_name=event["run_id"])
    result = publish_run(
        batch_id=event["batch_id"],
        run_id=event["run_id"],
        bucket=settings.processed_bucket,
        client=aws.client("s3"),
        now=datetime.now(UTC),
    )
    published = 1 if result.outcome == manifests.PUBLISH else 0
    metrics.add_metric(name="BatchesPublished", unit=MetricUnit.Count, value=published)
    metrics.add_metric(name="RowsRead", unit=MetricUnit.Count, value=result.rows_read)
    metrics.add_metric(name="RowsValid", unit=MetricUnit.Count, value=result.rows_valid)
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result.rows_rejected)
    metrics.add_metric(
        name="BatchLatency", unit=MetricUnit.Seconds, value=max(result.latency_seconds, 0.0)
    )
    if result.transform_seconds is not None:
        metrics.add_metric(
            name="TransformDuration", unit=MetricUnit.Seconds, value=result.transform_seconds
        )
    metrics.add_metric(
        name="PublicationConflicts", unit=MetricUnit.Count, value=result.conflicts
    )
    logger.info("Batch publication decided", extra=result.as_dict())
    return result.as_dict()
