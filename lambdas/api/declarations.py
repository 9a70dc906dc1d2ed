"""What the API's routes declare once: their documented answers, the error body, and the
table of routes the 405 answer is computed from (their parameters: lambdas/api/parameters.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NotRequired

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

# pydantic (the OpenAPI schema of the error body) needs this TypedDict before Python 3.12.
from typing_extensions import TypedDict

from lambdas.api import csv_export


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
