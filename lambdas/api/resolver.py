"""The REST resolver of the API: answers under Lambda's response limit, CSV when asked."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer.telemetry import logger
from lambdas.api import csv_export
from lambdas.api.declarations import error

# Lambda refuses a response over 6 MB (the whole payload): a larger answer becomes a 400
# that says how to narrow it, never a 502 for everyone asking the same thing.
MAX_RESPONSE_BYTES = 5 * 1024 * 1024


class BoundedResolver(APIGatewayRestResolver):
    """The REST resolver, whose answers stay under Lambda's response limit, and whose row
    routes answer CSV when asked (`format=csv`, or an Accept header preferring text/csv)."""

    def __init__(self, max_body_bytes: int = MAX_RESPONSE_BYTES) -> None:
        super().__init__(enable_validation=True)
        self.max_body_bytes = max_body_bytes

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        result: dict[str, Any] = super().resolve(event, context)
        csv_answer = self._as_csv(result)
        if csv_answer is not None:
            result = self._lambda_result(csv_answer)
        size = len(str(result.get("body") or "").encode("utf-8"))
        if size <= self.max_body_bytes:
            return result
        logger.warning("answer over the response limit", extra={"bytes": size})
        return self._lambda_result(
            error(
                HTTPStatus.BAD_REQUEST,
                f"the answer would be {size / 1024**2:.1f} MB, more than the "
                f"{self.max_body_bytes / 1024**2:.1f} MB one response may carry: narrow it "
                "(channel, date_from and date_to, or a smaller limit)",
            )
        )

    def _as_csv(self, result: Mapping[str, Any]) -> Response | None:
        """The rows of a successful row route as CSV, when the request chose CSV (its
        `format` was validated by the route)."""
        event = self.current_event
        table = csv_export.TABLES.get(event.path)
        if table is None or result.get("statusCode") != HTTPStatus.OK.value:
            return None
        query = event.query_string_parameters or {}
        accept = event.get_header_value("accept", case_sensitive=False)
        if csv_export.chosen_format(query.get(csv_export.FORMAT_PARAM), accept) != csv_export.CSV:
            return None
        body = json.loads(result["body"])
        name = csv_export.file_name(table, body, query.get("as_of"))
        return Response(
            status_code=HTTPStatus.OK.value,
            content_type=csv_export.CSV_CONTENT_TYPE,
            body=csv_export.render(table, body),
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def _lambda_result(self, response: Response) -> dict[str, Any]:
        return {
            "statusCode": response.status_code,
            "body": response.body,
            "isBase64Encoded": False,
            **self.current_event.header_serializer().serialize(
                headers=response.headers, cookies=[]
            ),
        }
