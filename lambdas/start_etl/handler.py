"""Lambda entry point of start_etl (S3 ObjectCreated notifications of the input bucket)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming
from lambdas.start_etl.config import StartEtlConfig
from lambdas.start_etl.trigger import input_objects, start_executions

logger = Logger()
# Deploy sets POWERTOOLS_METRICS_NAMESPACE; the default keeps metrics valid without it.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or naming.METRICS_NAMESPACE
)


@lru_cache(maxsize=1)
def config() -> StartEtlConfig:
    return StartEtlConfig.from_env()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config()
    objects = input_objects(event)
    metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=len(objects))
    summary = start_executions(
        objects,
        state_machine_arn=settings.state_machine_arn,
        client=aws.client("stepfunctions"),
    )
    metrics.add_metric(name="ExecutionsStarted", unit=MetricUnit.Count, value=len(summary.started))
    metrics.add_metric(
        name="DuplicateDeliveries", unit=MetricUnit.Count, value=len(summary.duplicates)
    )
    metrics.add_metric(name="ObjectsIgnored", unit=MetricUnit.Count, value=len(summary.skipped))
    return summary.as_dict()
