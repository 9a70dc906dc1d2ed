"""Lambda entry point of catalog_batch (the state machine's Catalog step)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, settings
from duffbeer.steps import StepEvent, parse_event
from duffbeer.telemetry import emit, entry_point, logger
from lambdas.catalog_batch.catalog import catalog_batch
from lambdas.catalog_batch.config import CatalogConfig

config = settings.loader(CatalogConfig)


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = parse_event(event, StepEvent)
    logger.append_keys(**step.log_keys)
    result = catalog_batch(
        batch_id=step.batch_id,
        run_id=step.run_id,
        bucket=config().processed_bucket,
        database=config().database,
        glue=aws.client("glue"),
        s3=aws.client("s3"),
    )
    emit(result.measures())
    logger.info("Batch cataloged", extra=result.as_dict())
    return result.as_dict()
