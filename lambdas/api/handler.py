"""API Lambda entry point: routes, parameter validation and error mapping, nothing else."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from http import HTTPStatus
from typing import Annotated, Any, NotRequired

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

# pydantic (the OpenAPI schema of the error body) needs this TypedDict before Python 3.12.
from typing_extensions import TypedDict

from duffbeer import __version__
from duffbeer.contract import CHANNEL_FILTER_PATTERN, INT_MAX, STATUSES
from duffbeer.errors import (
    ClientNotFoundError,
    InvalidParameterError,
    QueryError,
    QueryTimeoutError,
)
from duffbeer.state import Publication
from duffbeer.telemetry import Measure, emit, entry_point, logger
from lambdas.api import dashboard, overview, params
from lambdas.api.backends import create_backend
from lambdas.api.batches import BATCH_PARAMS, MAX_PAGE_SIZE, BatchesPage, BatchHistory
from lambdas.api.config import DEFAULT_CURRENCY, ApiConfig
from lambdas.api.queries import ClientReport, OrderStatusReport, ReportService, SalesByProduct

API_TITLE = "Duff Beer orders reports"
API_VERSION = "1.0.0"

# A route's path parameter (`<client_id>`), in the resolver's path templates.
_PARAMETER = re.compile(r"<\w+>")

# The parameters' exact schemas are declared for the OpenAPI document only: the handlers
# validate them (lambdas/api/params.py), so that every error says what was wrong.
_DATE = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
ChannelParam = Annotated[
    str | None,
    Query(
        description="Only this point-of-sale channel (known channels match in any case).",
        json_schema_extra={
            "type": "string",
            # The filter's pattern, without two hyphens in a row (no SQL comment look-alike).
            "pattern": "^(?!.*--)" + CHANNEL_FILTER_PATTERN.pattern.removeprefix("^"),
        },
    ),
]
DateFromParam = Annotated[
    str | None,
    Query(
        description="Only order dates on or after this day (YYYY-MM-DD); not after date_to.",
        json_schema_extra=_DATE,
    ),
]
DateToParam = Annotated[
    str | None,
    Query(
        description="Only order dates on or before this day (YYYY-MM-DD).",
        json_schema_extra=_DATE,
    ),
]
AsOfParam = Annotated[
    str | None,
    Query(
        description="The report as it stood at this instant (ISO-8601 UTC, e.g. "
        "2026-11-28T08:00:00Z): after the last batch published at or before it. A 400 "
        "before the first publication still kept.",
        json_schema_extra={
            "type": "string",
            "format": "date-time",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
            "(\\.[0-9]{1,6})?(Z|\\+00:00)$",
        },
    ),
]


class Health(TypedDict):
    status: str
    version: str


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


def _responses(*errors: HTTPStatus) -> dict[int, OpenAPIResponse]:
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


_ALWAYS = (
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.METHOD_NOT_ALLOWED,
    HTTPStatus.INTERNAL_SERVER_ERROR,
)
_QUERIES = (HTTPStatus.BAD_GATEWAY, HTTPStatus.GATEWAY_TIMEOUT)


def _error(status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"status": status.value, "error": status.phrase, "message": message}),
        headers=headers,
    )


# Lambda refuses a response over 6 MB (the whole payload): a larger answer becomes a 400
# that says how to narrow it, never a 502 for everyone asking the same thing.
MAX_RESPONSE_BYTES = 5 * 1024 * 1024


class BoundedResolver(APIGatewayRestResolver):
    """The REST resolver, whose answers stay under Lambda's response limit."""

    def __init__(self, max_body_bytes: int = MAX_RESPONSE_BYTES) -> None:
        super().__init__(enable_validation=True)
        self.max_body_bytes = max_body_bytes

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        result: dict[str, Any] = super().resolve(event, context)
        size = len(str(result.get("body") or "").encode("utf-8"))
        if size <= self.max_body_bytes:
            return result
        logger.warning("answer over the response limit", extra={"bytes": size})
        refused = _error(
            HTTPStatus.BAD_REQUEST,
            f"the answer would be {size / 1024**2:.1f} MB, more than the "
            f"{self.max_body_bytes / 1024**2:.1f} MB one response may carry: narrow it "
            "(channel, date_from and date_to, or a smaller limit)",
        )
        return {
            "statusCode": refused.status_code,
            "body": refused.body,
            "isBase64Encoded": False,
            **self.current_event.header_serializer().serialize(
                headers=refused.headers, cookies=[]
            ),
        }


def _publications_if_readable(service: ReportService) -> list[Publication]:
    """The state's publications, or none when the catalog cannot be read: the batch history
    comes from the bucket and still answers, without the instants runs entered the reports."""
    try:
        return service.backend.published()
    except QueryError as e:
        logger.warning("publications not read for the batch history", extra={"error": str(e)})
        return []


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

    def query_names(allowed: tuple[str, ...]) -> None:
        raw = app.current_event.multi_value_query_string_parameters or {}
        params.check_query_names(raw, allowed)

    @app.get(
        "/orders/<client_id>",
        summary="A client's totals, by status and by channel; optionally its orders, paged.",
        tags=["reports"],
        responses=_responses(*_ALWAYS, HTTPStatus.NOT_FOUND, *_QUERIES),
    )
    def client_orders(
        client_id: Annotated[
            str,
            Path(
                description="The client id, a positive integer.",
                json_schema_extra={"type": "integer", "minimum": 1, "maximum": INT_MAX},
            ),
        ],
        include: Annotated[
            str | None,
            Query(
                description="'orders' adds the client's orders, paged.",
                json_schema_extra={"type": "string", "enum": [params.INCLUDE_ORDERS]},
            ),
        ] = None,
        limit: Annotated[
            str | None,
            Query(
                description=f"Orders per page, 1-{params.MAX_PAGE_SIZE} (default "
                f"{params.DEFAULT_PAGE_SIZE}); only with include=orders.",
                json_schema_extra={
                    "type": "integer",
                    "minimum": 1,
                    "maximum": params.MAX_PAGE_SIZE,
                },
            ),
        ] = None,
        cursor: Annotated[
            str | None,
            Query(
                description="next_cursor of the previous page; only with include=orders.",
                json_schema_extra={"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            ),
        ] = None,
        as_of: AsOfParam = None,
    ) -> ClientReport:
        query_names(params.CLIENT_PARAMS)
        page = params.parse_orders_page(include, limit, cursor)
        instant = params.parse_as_of(as_of)
        return service.client_report(params.parse_client_id(client_id), page, instant)

    @app.get(
        "/sales-by-product",
        summary="Per product: orders, units, sales and volume, by channel; by sales, descending.",
        tags=["reports"],
        responses=_responses(*_ALWAYS, *_QUERIES),
    )
    def sales_by_product(
        channel: ChannelParam = None,
        date_from: DateFromParam = None,
        date_to: DateToParam = None,
        as_of: AsOfParam = None,
    ) -> SalesByProduct:
        query_names(params.FILTER_PARAMS)
        return service.sales_by_product(params.parse_filters(channel, date_from, date_to, as_of))

    @app.get(
        "/order-status-report",
        summary=f"Per status ({', '.join(STATUSES)}): orders, lines, sales, share of orders.",
        tags=["reports"],
        responses=_responses(*_ALWAYS, *_QUERIES),
    )
    def order_status_report(
        channel: ChannelParam = None,
        date_from: DateFromParam = None,
        date_to: DateToParam = None,
        as_of: AsOfParam = None,
    ) -> OrderStatusReport:
        query_names(params.FILTER_PARAMS)
        return service.order_status_report(params.parse_filters(channel, date_from, date_to, as_of))

    @app.get(
        "/health",
        summary="Liveness: the API answers, and its release (no key needed).",
        tags=["operations"],
        responses=_responses(*_ALWAYS),
    )
    def health() -> Health:
        # Says nothing of the deployment: anyone may call it.
        query_names(())
        return {"status": "ok", "version": __version__}

    @app.get(
        "/status",
        summary="The currency of the amounts, the query backend and the publication it "
        "serves (the key is needed).",
        tags=["operations"],
        responses=_responses(*_ALWAYS),
    )
    def status() -> dict[str, Any]:
        query_names(())
        return {
            "status": "ok",
            "version": __version__,
            "currency": currency,
            **service.backend.status(),
        }

    @app.get(
        "/daily-sales",
        summary="Per day with current lines: units and sales; oldest first.",
        tags=["reports"],
        responses=_responses(*_ALWAYS, *_QUERIES),
    )
    def daily_sales(
        channel: ChannelParam = None,
        date_from: DateFromParam = None,
        date_to: DateToParam = None,
        as_of: AsOfParam = None,
    ) -> overview.DailySales:
        query_names(params.FILTER_PARAMS)
        filters = params.parse_filters(channel, date_from, date_to, as_of)
        return overview.daily_sales(service.backend, filters)

    @app.get(
        "/top-clients",
        summary="The clients with the most sales, over all channels or in one; searchable.",
        tags=["reports"],
        responses=_responses(*_ALWAYS, *_QUERIES),
    )
    def top_clients(
        channel: ChannelParam = None,
        search: Annotated[
            str | None,
            Query(
                description="Only clients whose name contains this text (any case) or whose "
                "id it is.",
                json_schema_extra={
                    "type": "string",
                    "minLength": 1,
                    "maxLength": overview.MAX_SEARCH_CHARS,
                },
            ),
        ] = None,
        limit: Annotated[
            str | None,
            Query(
                description=f"How many clients, 1-{overview.MAX_TOP_CLIENTS} (default "
                f"{overview.DEFAULT_TOP_CLIENTS}).",
                json_schema_extra={
                    "type": "integer",
                    "minimum": 1,
                    "maximum": overview.MAX_TOP_CLIENTS,
                },
            ),
        ] = None,
        as_of: AsOfParam = None,
    ) -> overview.TopClients:
        query_names(overview.TOP_CLIENTS_PARAMS)
        return overview.top_clients(service.backend, channel, search, limit, as_of)

    @app.get(
        "/batches",
        summary="The batch history: every run with a record, newest first, paged.",
        tags=["operations"],
        responses=_responses(*_ALWAYS),
    )
    def batches(
        limit: Annotated[
            str | None,
            Query(
                description=f"Runs per page, 1-{MAX_PAGE_SIZE} (default 20).",
                json_schema_extra={"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            ),
        ] = None,
        cursor: Annotated[
            str | None,
            Query(
                description="next_cursor of the previous page.",
                json_schema_extra={"type": "string", "pattern": "^[A-Za-z0-9_-]{1,400}$"},
            ),
        ] = None,
    ) -> BatchesPage:
        query_names(BATCH_PARAMS)
        return batch_history().page(limit, cursor, _publications_if_readable(service))

    @app.get("/dashboard", include_in_schema=False)
    def dashboard_page() -> Response[str]:
        query_names(())
        return dashboard.page_response()

    @app.get("/dashboard/<asset>", include_in_schema=False)
    def dashboard_asset(asset: str) -> Response[str]:
        query_names(())
        return dashboard.asset_response(asset)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(
            status_code=HTTPStatus.OK.value,
            content_type=content_types.APPLICATION_JSON,
            body=openapi_document(app),
        )

    _handle_errors(app)
    return app


def _handle_errors(app: APIGatewayRestResolver) -> None:
    """Every error as the one JSON error body, with its status (400, 404, 405, 502, 504,
    500 with the request id)."""

    @app.exception_handler(InvalidParameterError)
    def invalid_parameter(e: InvalidParameterError) -> Response:
        return _error(HTTPStatus.BAD_REQUEST, str(e))

    @app.exception_handler(RequestValidationError)
    def invalid_request(e: RequestValidationError) -> Response:
        fields = sorted({".".join(str(p) for p in err.get("loc", ())) for err in e.errors()})
        # Every declared parameter is a string, so this is a parameter given more than once.
        return _error(
            HTTPStatus.BAD_REQUEST,
            f"invalid request parameters: {', '.join(fields)} (each takes one value)",
        )

    @app.exception_handler(ClientNotFoundError)
    def client_not_found(e: ClientNotFoundError) -> Response:
        return _error(HTTPStatus.NOT_FOUND, str(e))

    @app.exception_handler(QueryTimeoutError)
    def query_timeout(e: QueryTimeoutError) -> Response:
        logger.error("report query timed out", extra={"error": str(e)})
        emit([Measure("ReportQueryTimeout", 1)])
        return _error(HTTPStatus.GATEWAY_TIMEOUT, "the report query took too long; try again")

    @app.exception_handler(QueryError)
    def query_failed(e: QueryError) -> Response:
        logger.error("report query failed", extra={"error": str(e)})
        emit([Measure("ReportQueryFailed", 1)])
        return _error(HTTPStatus.BAD_GATEWAY, "the report query failed")

    @app.not_found
    def not_found(_: NotFoundError) -> Response:
        method = app.current_event.http_method
        path = app.current_event.path
        allowed = allowed_methods(app, path)
        if method in allowed:
            # The path has a route's shape, but its parameter holds characters the router
            # never matches (quotes, control characters): a malformed parameter.
            return _error(HTTPStatus.BAD_REQUEST, f"malformed path parameter in {path!a}")
        if allowed:
            return _error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} is not allowed on {path}; use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        return _error(HTTPStatus.NOT_FOUND, f"no route {method} {path}")

    @app.exception_handler(Exception)
    def unexpected(e: Exception) -> Response:
        # The stack trace goes to the logs only; the client gets the request id to quote.
        logger.exception("unhandled error")
        request_id = app.current_event.request_context.request_id
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error (request {request_id})")


def allowed_methods(app: APIGatewayRestResolver, path: str) -> list[str]:
    """The methods of the resolver's own routes whose path template fits `path`, whatever its
    parameters hold. The resolver keeps its routes in `_static_routes` and `_dynamic_routes`
    and offers no public list; Powertools has no 405 of its own."""
    routes = app._static_routes + app._dynamic_routes
    return sorted(
        {
            route.method
            for route in routes
            if re.fullmatch(_PARAMETER.sub("[^/]+", re.escape(route.path)), path)
        }
    )


_REFERENCE = re.compile(r'"#/components/schemas/([^"]+)"')


def _plain_parameter(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema as HTTP carries it: never null, whole numbers as integers."""
    schema.pop("anyOf", None)
    for bound in ("minimum", "maximum"):
        if isinstance(schema.get(bound), float) and schema[bound].is_integer():
            schema[bound] = int(schema[bound])
    return schema


def openapi_document(app: APIGatewayRestResolver) -> str:
    """The OpenAPI document of the routes, tidied where the resolver's defaults do not fit
    this API: request validation errors are 400s here (not the resolver's 422), and query
    parameters are absent or strings of their declared shape (never null)."""
    document = json.loads(
        app.get_openapi_json_schema(
            title=API_TITLE,
            version=API_VERSION,
            description="The current-state order reports of the Duff Beer orders pipeline. "
            "API Gateway answers requests without a valid x-api-key, and methods the API does "
            "not define, with 403.",
        )
    )
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
            for parameter in operation.get("parameters", []):
                _plain_parameter(parameter["schema"])
    # Keep only the component schemas the routes use (directly or through one another).
    schemas = document.get("components", {}).get("schemas", {})
    used: set[str] = set()
    found = set(_REFERENCE.findall(json.dumps(document.get("paths", {}))))
    while found - used:
        used |= found
        found = {ref for name in used for ref in _REFERENCE.findall(json.dumps(schemas[name]))}
    for name in set(schemas) - used:
        del schemas[name]
    return json.dumps(document)


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
