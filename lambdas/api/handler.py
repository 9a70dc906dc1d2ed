"""API Lambda entry point: the routers of each area, the error answers, nothing else."""

from __future__ import annotations

from functools import lru_cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from duffbeer.errors import (
    ClientNotFoundError,
    InvalidParameterError,
    QueryError,
    QueryTimeoutError,
)
from duffbeer.telemetry import Measure, emit, entry_point, logger
from lambdas.api.backends import create_backend
from lambdas.api.batches import BatchHistory
from lambdas.api.config import DEFAULT_CURRENCY, ApiConfig
from lambdas.api.declarations import RouteTable, error
from lambdas.api.parameters import INVALID_PARAMETER
from lambdas.api.queries import ReportService
from lambdas.api.resolver import MAX_RESPONSE_BYTES, BoundedResolver
from lambdas.api.routes.operations import operations_router
from lambdas.api.routes.page import page_router
from lambdas.api.routes.reports import reports_router

__all__ = ["MAX_RESPONSE_BYTES", "create_app", "handler"]


def create_app(
    service: ReportService,
    history: BatchHistory | None = None,
    max_body_bytes: int = MAX_RESPONSE_BYTES,
    currency: str = DEFAULT_CURRENCY,
) -> APIGatewayRestResolver:
    """The resolver with every route bound to `service` (and `/batches` to `history`,
    built from the environment on first use when not given); `currency` is the one of every
    amount, reported on /status.

    A resolver holds the event it is resolving, so one instance serves one request at a
    time: Lambda does that by design; a threaded server needs one resolver per thread.
    """
    app = BoundedResolver(max_body_bytes)
    histories: list[BatchHistory] = [history] if history is not None else []

    def batch_history() -> BatchHistory:
        if not histories:
            histories.append(BatchHistory.from_config(ApiConfig.from_env()))
        return histories[0]

    table = RouteTable()
    app.include_router(reports_router(service, table))
    app.include_router(operations_router(service, batch_history, currency, table))
    app.include_router(page_router(app, table))
    _handle_errors(app, table)
    return app


def _handle_errors(app: APIGatewayRestResolver, table: RouteTable) -> None:
    """Every error as the one JSON error body, with its status (400, 404, 405, 502, 504,
    500 with the request id)."""

    @app.exception_handler(InvalidParameterError)
    def invalid_parameter(e: InvalidParameterError) -> Response:
        return error(HTTPStatus.BAD_REQUEST, str(e))

    @app.exception_handler(RequestValidationError)
    def invalid_request(e: RequestValidationError) -> Response:
        errors = e.errors()
        # A parameter's parser said what was wrong with it (parameters.parsed_by).
        said = [err["msg"] for err in errors if err.get("type") == INVALID_PARAMETER]
        if said:
            return error(HTTPStatus.BAD_REQUEST, said[0])
        # Otherwise the value did not reach a parser: a parameter given more than once.
        fields = sorted({".".join(str(p) for p in err.get("loc", ())) for err in errors})
        return error(
            HTTPStatus.BAD_REQUEST,
            f"invalid request parameters: {', '.join(fields)} (each takes one value)",
        )

    @app.exception_handler(ClientNotFoundError)
    def client_not_found(e: ClientNotFoundError) -> Response:
        return error(HTTPStatus.NOT_FOUND, str(e))

    @app.exception_handler(QueryTimeoutError)
    def query_timeout(e: QueryTimeoutError) -> Response:
        logger.error("report query timed out", extra={"error": str(e)})
        emit([Measure("ReportQueryTimeout", 1)])
        return error(HTTPStatus.GATEWAY_TIMEOUT, "the report query took too long; try again")

    @app.exception_handler(QueryError)
    def query_failed(e: QueryError) -> Response:
        logger.error("report query failed", extra={"error": str(e)})
        emit([Measure("ReportQueryFailed", 1)])
        return error(HTTPStatus.BAD_GATEWAY, "the report query failed")

    @app.not_found
    def not_found(_: NotFoundError) -> Response:
        method = app.current_event.http_method
        path = app.current_event.path
        allowed = table.allowed_methods(path)
        if method in allowed:
            # The path has a route's shape, but its parameter holds characters the router
            # never matches (quotes, control characters): a malformed parameter.
            return error(HTTPStatus.BAD_REQUEST, f"malformed path parameter in {path!a}")
        if allowed:
            return error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} is not allowed on {path}; use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        return error(HTTPStatus.NOT_FOUND, f"no route {method} {path}")

    @app.exception_handler(Exception)
    def unexpected(e: Exception) -> Response:
        # The stack trace goes to the logs only; the client gets the request id to quote.
        logger.exception("unhandled error")
        request_id = app.current_event.request_context.request_id
        return error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error (request {request_id})")


@lru_cache(maxsize=1)
def default_app() -> APIGatewayRestResolver:
    """Built on the first invocation (config validated once per execution environment)."""
    config = ApiConfig.from_env()
    return create_app(
        ReportService(create_backend(config)),
        BatchHistory.from_config(config),
        currency=config.currency,
    )


@entry_point(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return default_app().resolve(event, context)
