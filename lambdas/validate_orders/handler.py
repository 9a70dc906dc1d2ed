"""Lambda entry point of validate_orders (the state machine's Validate step)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming
from duffbeer.errors import InvalidFileError
from lambdas.validate_orders.checks import stage_input, validate_object
from lambdas.validate_orders.config import ValidateConfig

logger = Logger()
# Deploy sets POWERTOOLS_METRICS_NAMESPACE; the default keeps metrics valid without it.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or naming.METRICS_NAMESPACE
)


@lru_cache(maxsize=1)
def config() -> ValidateConfig:
    return ValidateConfig.from_env()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config()
    logger.append_keys(batch_id=event.get("batch_id"), execution_name=event.get("run_id"))
    where = f"s3://{event['bucket']}/{event['key']}"
    try:
        result = validate_object(
            bucket=event["bucket"],
            key=event["key"],
            version_id=event.get("version_id"),
            etag=event.get("etag"),
            event_time=event["event_time"],
            max_file_bytes=settings.max_file_bytes,
            sample_bytes=settings.sample_bytes,
            client=aws.client("s3"),
        )
        result = stage_input(
            result,
            client=aws.client("s3"),
            processed_bucket=settings.processed_bucket,
            target_key=naming.run_input_key(event["batch_id"], event["run_id"]),
        )
    except InvalidFileError as e:
        metrics.add_metric(name="InvalidFiles", unit=MetricUnit.Count, value=1)
        metrics.add_metadata(key="error", value=type(e).__name__)
        logger.warning("Input file rejected", extra={"object": where, "error": type(e).__name__})
        raise
    metrics.add_metric(name="ValidFiles", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="InputBytes", unit=MetricUnit.Bytes, value=result.size)
    if result.extra_columns:
        logger.warning(
            "Extra columns are ignored", extra={"object": where, "columns": result.extra_columns}
        )
    logger.info("Input file valid", extra={"object": where, "size": result.size, "bom": result.bom})
    return result.as_dict()
