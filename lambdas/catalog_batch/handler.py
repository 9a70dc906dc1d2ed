"""Lambda entry point of catalog_batch (the state machine's Catalog step)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming
from lambdas.catalog_batch.catalog import catalog_batch
from lambdas.catalog_batch.config import CatalogConfig

logger = Logger()
# Deploy sets POWERTOOLS_METRICS_NAMESPACE; the default keeps metrics valid without it.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or naming.METRICS_NAMESPACE
)


@lru_cache(maxsize=1)
def config() -> CatalogConfig:
    return CatalogConfig.from_env()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config()
    logger.append_keys(batch_id=event["batch_id"], execution_name=event["run_id"])
    result = catalog_batch(
        batch_id=event["batch_id"],
        run_id=event["run_id"],
        bucket=settings.processed_bucket,
        database=settings.database,
        versions_database=settings.versions_database,
        glue=aws.client("glue"),
        s3=aws.client("s3"),
    )
    metrics.add_metric(
        name="PartitionsCreated", unit=MetricUnit.Count, value=result.partitions_created
    )
    metrics.add_metric(
        name="PartitionsUpdated", unit=MetricUnit.Count, value=result.partitions_updated
    )
    metrics.add_metric(
        name="PartitionsDeleted", unit=MetricUnit.Count, value=result.partitions_deleted
    )
    logger.info("Batch cataloged", extra=result.as_dict())
    return result.as_dict()
