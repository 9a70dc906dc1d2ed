"""Lambda entry point of quarantine_batch (the state machine's failure path)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming
from lambdas.quarantine_batch.config import QuarantineConfig
from lambdas.quarantine_batch.quarantine import FailedRun, quarantine

logger = Logger()
# Deploy sets POWERTOOLS_METRICS_NAMESPACE; the default keeps metrics valid without it.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or naming.METRICS_NAMESPACE
)


@lru_cache(maxsize=1)
def config() -> QuarantineConfig:
    return QuarantineConfig.from_env()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config()
    logger.append_keys(batch_id=event["batch_id"], execution_name=event["run_id"])
    failed = FailedRun(
        batch_id=event["batch_id"],
        run_id=event["run_id"],
        bucket=event["bucket"],
        key=event["key"],
        version_id=event.get("version_id"),
        event_time=event.get("event_time", ""),
        error=event.get("error") or "Unknown",
        cause=event.get("cause") or "",
    )
    result = quarantine(
        failed,
        processed_bucket=settings.processed_bucket,
        client=aws.client("s3"),
        now=datetime.now(UTC),
    )
    metrics.add_metric(name="QuarantinedFiles", unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="reason", value=result.reason)
    logger.warning(
        "Input quarantined",
        extra={
            "object": f"s3://{failed.bucket}/{failed.key}",
            "error": failed.error,
            "reason": result.reason,
            "location": result.location,
            "report": result.report,
        },
    )
    return result.as_dict()
