"""Lambda entry point of start_etl (S3 ObjectCreated notifications of the input bucket)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, settings
from duffbeer.telemetry import Measure, emit, entry_point, logger
from lambdas.start_etl.config import StartEtlConfig
from lambdas.start_etl.trigger import input_objects, start_executions

config = settings.loader(StartEtlConfig)


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    objects = input_objects(event)
    emit([Measure("RecordsReceived", len(objects))])
    summary = start_executions(
        objects, state_machine_arn=config().state_machine_arn, client=aws.client("stepfunctions")
    )
    emit(summary.measures())
    logger.info("Records handled", extra=summary.as_dict())
    return summary.as_dict()
