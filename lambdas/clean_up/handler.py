"""Lambda entry point of clean_up (the state machine's CleanUp step)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming
from lambdas.clean_up.cleanup import Grace, clean_up
from lambdas.clean_up.config import CleanUpConfig

logger = Logger()
# Deploy sets POWERTOOLS_METRICS_NAMESPACE; the default keeps metrics valid without it.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or naming.METRICS_NAMESPACE
)


@lru_cache(maxsize=1)
def config() -> CleanUpConfig:
    return CleanUpConfig.from_env()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config()
    logger.append_keys(batch_id=event["batch_id"], execution_name=event["run_id"])
    result = clean_up(
        batch_id=event["batch_id"],
        bucket=settings.processed_bucket,
        s3=aws.client("s3"),
        glue=aws.client("glue"),
        database=settings.database,
        versions_database=settings.versions_database,
        now=datetime.now(UTC),
        grace=Grace(
            reader=timedelta(seconds=settings.reader_grace_seconds),
            orphan=timedelta(seconds=settings.orphan_grace_seconds),
        ),
    )
    metrics.add_metric(
        name="SupersededRunsDeleted", unit=MetricUnit.Count, value=len(result.deleted_runs)
    )
    metrics.add_metric(
        name="StateVersionsDeleted", unit=MetricUnit.Count, value=len(result.deleted_versions)
    )
    # Alarmed: leftovers are invisible to readers, and the next run retries them.
    metrics.add_metric(name="CleanupErrors", unit=MetricUnit.Count, value=len(result.errors))
    if result.errors:
        logger.error("Some objects could not be cleaned up", extra={"errors": result.errors})
    logger.info("Clean-up done", extra=result.as_dict())
    return result.as_dict()
