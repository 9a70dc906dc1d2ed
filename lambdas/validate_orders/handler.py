"""Lambda entry point of validate_orders (the state machine's Validate step)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, naming, settings
from duffbeer.errors import InvalidFileError
from duffbeer.steps import parse_event
from duffbeer.telemetry import Measure, emit, entry_point, logger
from lambdas.validate_orders.checks import ValidateEvent, stage_input, validate_object
from lambdas.validate_orders.config import ValidateConfig

config = settings.loader(ValidateConfig)


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = parse_event(event, ValidateEvent)
    logger.append_keys(**step.log_keys)
    where = f"s3://{step.bucket}/{step.key}"
    try:
        result = validate_object(
            bucket=step.bucket,
            key=step.key,
            version_id=step.version_id,
            etag=step.etag,
            event_time=step.event_time,
            max_file_bytes=config().max_file_bytes,
            sample_bytes=config().sample_bytes,
            client=aws.client("s3"),
        )
        result = stage_input(
            result,
            client=aws.client("s3"),
            processed_bucket=config().processed_bucket,
            target_key=naming.run_input_key(step.batch_id, step.run_id),
        )
    except InvalidFileError as e:
        emit([Measure("InvalidFiles", 1)], metadata={"error": type(e).__name__})
        logger.warning("Input file rejected", extra={"object": where, "error": type(e).__name__})
        raise
    emit(result.measures())
    if result.extra_columns:
        logger.warning(
            "Extra columns are ignored", extra={"object": where, "columns": result.extra_columns}
        )
    logger.info("Input file valid", extra={"object": where, "size": result.size, "bom": result.bom})
    return result.as_dict()
