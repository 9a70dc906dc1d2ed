"""What the API's routes declare once: their query parameters, their documented answers, the
error body, and the table of routes the 405 answer is computed from."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from functools import partial
from http import HTTPStatus
from typing import Annotated, Any, Literal, NotRequired

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

# pydantic (the OpenAPI schema of the error body) needs this TypedDict before Python 3.12.
from typing_extensions import TypedDict

from duffbeer.contract import CHANNEL_FILTER_PATTERN
from duffbeer.errors import InvalidParameterError
from lambdas.api import csv_export, params

# Every parameter is declared once, as its type, its documented constraints and the parser
# that validates it (lambdas/api/params.py): the OpenAPI document, the validation and the
# 400's message all come from that declaration.
INVALID_PARAMETER = "invalid_parameter"


def parsed_by(parse: Callable[[str], Any]) -> BeforeValidator:
    """Validate a parameter's text with `parse`: its InvalidParameterError becomes the
    request's validation error, with the message the 400 carries. A repeated parameter (a
    list) is left to the type check, which refuses it."""

    def validate(raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        try:
            return parse(raw)
        except InvalidParameterError as e:
            raise PydanticCustomError(INVALID_PARAMETER, "{message}", {"message": str(e)}) from e

    return BeforeValidator(validate)


def limit_parser(maximum: int) -> BeforeValidator:
    return parsed_by(partial(params.parse_limit, maximum=maximum))


ChannelParam = Annotated[
    str | None,
    Query(
        description="Only this point-of-sale channel (known channels match in any case).",
        json_schema_extra={
            # The filter's pattern, without two hyphens in a row (no SQL comment look-alike).
            "pattern": "^(?!.*--)" + CHANNEL_FILTER_PATTERN.pattern.removeprefix("^"),
        },
    ),
    parsed_by(params.parse_channel),
]
_DATE = {"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
DateFromParam = Annotated[
    date | None,
    Query(
        description="Only order dates on or after this day (YYYY-MM-DD); not after date_to.",
        json_schema_extra=_DATE,
    ),
    parsed_by(partial(params.parse_date, "date_from")),
]
DateToParam = Annotated[
    date | None,
    Query(
        description="Only order dates on or before this day (YYYY-MM-DD).", json_schema_extra=_DATE
    ),
    parsed_by(partial(params.parse_date, "date_to")),
]
AsOfParam = Annotated[
    datetime | None,
    Query(
        description="The report as it stood at this instant (ISO-8601 UTC, e.g. "
        "2026-11-28T08:00:00Z): after the last batch published at or before it. A 400 "
        "before the first publication still kept.",
        json_schema_extra={"pattern": f"^{params.INSTANT.pattern}$"},
    ),
    parsed_by(params.parse_as_of),
]
FormatParam = Annotated[
    Literal["json", "csv"] | None,
    Query(
        description="csv: the rows as CSV (RFC 4180, a header line, amounts to the cent) "
        "instead of JSON; the same as sending Accept: text/csv.",
    ),
    parsed_by(params.parse_format),
]
# The filters of the row routes, and the format of their answer.
REPORT_PARAMS = (*params.FILTER_PARAMS, csv_export.FORMAT_PARAM)


def check_query(router: Router, allowed: Sequence[str]) -> None:
    """Refuse query parameters the route does not take, or one given twice."""
    raw = router.current_event.multi_value_query_string_parameters or {}
    params.check_query_names(raw, allowed)


class ErrorBody(TypedDict):
    """The JSON body of every error. API Gateway's own answers (a missing or wrong API key,
    a method the API does not define) carry the message only."""

    message: str
    status: NotRequired[int]
    error: NotRequired[str]


_ERRORS: dict[HTTPStatus, str] = {
    HTTPStatus.BAD_REQUEST: "A malformed, unknown or repeated parameter (the message names it).",
    HTTPStatus.FORBIDDEN: "From API Gateway: no or a wrong x-api-key, or a method this API "
    "does not define.",
    HTTPStatus.NOT_FOUND: "The client has no current order lines.",
    HTTPStatus.METHOD_NOT_ALLOWED: "A method other than GET on this path (the Allow header "
    "names GET).",
    HTTPStatus.INTERNAL_SERVER_ERROR: "An unexpected error; the message holds the request id.",
    HTTPStatus.BAD_GATEWAY: "The report query failed.",
    HTTPStatus.GATEWAY_TIMEOUT: "The report query did not finish in time; try again.",
}
ALWAYS = (
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.METHOD_NOT_ALLOWED,
    HTTPStatus.INTERNAL_SERVER_ERROR,
)
QUERIES = (HTTPStatus.BAD_GATEWAY, HTTPStatus.GATEWAY_TIMEOUT)


def responses(*errors: HTTPStatus) -> dict[int, OpenAPIResponse]:
    """The documented answers of a route: 200 (its return type) and `errors`."""
    documented: dict[int, OpenAPIResponse] = {200: {"description": "The report."}}
    for status in errors:
        response: OpenAPIResponse = {
            "description": _ERRORS[status],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}},
        }
        if status is HTTPStatus.METHOD_NOT_ALLOWED:
            response["headers"] = {"Allow": {"schema": {"type": "string"}}}
        documented[status.value] = response
    return documented


def row_responses(model: Any, *errors: HTTPStatus) -> dict[int, OpenAPIResponse]:
    """A row route's answers: its rows as JSON (`model`) or CSV, and `errors`."""
    documented = responses(*errors)
    documented[200] = {
        "description": "The report, as JSON or (format=csv, Accept: text/csv) CSV rows.",
        "content": {
            content_types.APPLICATION_JSON: {"model": model},
            csv_export.TEXT_CSV: {"schema": {"type": "string"}},
        },
    }
    return documented


def error(status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> Response:
    """The one error body, with its status."""
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"status": status.value, "error": status.phrase, "message": message}),
        headers=headers,
    )


# A route's path parameter (`<client_id>`), in the resolver's path templates.
_PARAMETER = re.compile(r"<\w+>")


class RouteTable:
    """The API's routes as the code declares them. Routes are added through `get`; the
    table answers which methods a path allows (Powertools keeps its routes private and has
    no 405 of its own)."""

    def __init__(self) -> None:
        self._paths: list[str] = []

    def get(self, router: Router, path: str, **options: Any) -> Callable[..., Any]:
        """`router.get(path, **options)`, remembered."""
        self._paths.append(path)
        return router.get(path, **options)

    def allowed_methods(self, path: str) -> list[str]:
        """The methods of the routes whose path template fits `path`, whatever its
        parameters hold."""
        fits = (
            re.fullmatch(_PARAMETER.sub("[^/]+", re.escape(template)), path)
            for template in self._paths
        )
        return ["GET"] if any(fits) else []
