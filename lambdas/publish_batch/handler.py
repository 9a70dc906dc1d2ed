"""Lambda entry point of publish_batch (the state machine's Store step)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming
from lambdas.publish_batch.config import PublishConfig
from lambdas.publish_batch.publish import verify_and_clean

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
    result = verify_and_clean(
        batch_id=event["batch_id"],
        run_id=event["run_id"],
        bucket=settings.processed_bucket,
        client=aws.client("s3"),
        now=datetime.now(UTC),
        stale_after=timedelta(seconds=settings.stale_run_seconds),
    )
    metrics.add_metric(name="BatchesPublished", unit=MetricUnit.Count, value=1)
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
        name="SupersededRunsDeleted", unit=MetricUnit.Count, value=len(result.deleted_runs)
    )
    metrics.add_metric(
        name="CleanupErrors", unit=MetricUnit.Count, value=len(result.cleanup_errors)
    )
    if result.cleanup_errors:
        # The batch is published and consistent; leftovers of older runs are invisible to
        # readers and the next run of the batch retries the deletion. Alarm on the metric.
        logger.error(
            "Could not delete some objects of older runs", extra={"errors": result.cleanup_errors}
        )
    logger.info(
        "Batch publication verified",
        extra={
            "outcome": result.outcome,
            "published_run_id": result.published_run_id,
            "rows_valid": result.rows_valid,
            "rows_rejected": result.rows_rejected,
            "partitions": result.partitions,
            "deleted_runs": result.deleted_runs,
        },
    )
    return result.as_dict()
