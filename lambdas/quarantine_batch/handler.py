"""Lambda entry point of quarantine_batch (the state machine's failure path)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer import aws, settings, utc
from duffbeer.steps import parse_event
from duffbeer.telemetry import emit, entry_point, logger
from lambdas.quarantine_batch.config import QuarantineConfig
from lambdas.quarantine_batch.quarantine import FailedRun, quarantine

config = settings.loader(QuarantineConfig)


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failed = parse_event(event, FailedRun)
    logger.append_keys(**failed.log_keys)
    result = quarantine(
        failed, processed_bucket=config().processed_bucket, client=aws.client("s3"), now=utc.now()
    )
    emit(result.measures(), metadata={"reason": result.reason})
    logger.warning(
        "Input quarantined",
        extra={
            "object": f"s3://{failed.bucket}/{failed.key}",
            "error": failed.error,
            **result.as_dict(),
        },
    )
    return result.as_dict()
