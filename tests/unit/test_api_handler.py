"""The API handler end to end on API Gateway proxy events: routes, filters, every error, and
injection attempts that must be refused before any query runs."""
# ruff: noqa: E501  (the parameter tables read best one case per line)

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from duffbeer import __version__, aws
from duffbeer.errors import QueryError, QueryTimeoutError
from duffbeer.reports_sql import BoundQuery
from duffbeer.state import Publication
from lambdas.api import handler as api_handler
from lambdas.api.backends.duckdb_backend import DuckDBBackend
from lambdas.api.params import encode_cursor
from lambdas.api.queries import ReportService, Row
from tests.unit.test_api_support import (
    V1_ROWS,
    V2_ROWS,
    api_event,
    body,
    load_event,
    moto_endpoint,
    reference_states,
    write_iceberg_state,
)

pytestmark = pytest.mark.functional

__all__ = ["moto_endpoint"]  # the fixture, re-exported for pytest


@dataclass
class FakeLambdaContext:
    function_name: str = "duffbeer-orders-api"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:duffbeer-orders-api"
    aws_request_id: str = "52fdfc07-2182-454f-963f-5f0f9a621d72"


class RecordingBackend:
    """The real DuckDB backend, keeping every query that reached it."""

    def __init__(self, inner: DuckDBBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.queries: list[BoundQuery] = []

    def fetch(self, queries: Sequence[BoundQuery], as_of: datetime | None = None) -> list[list[Row]]:
        self.queries.extend(queries)
        return self.inner.fetch(queries, as_of)

    def status(self) -> dict[str, Any]:
        return self.inner.status()

    def published(self) -> list[Publication]:
        return self.inner.published()


class FailingBackend:
    name = "failing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def fetch(self, queries: Sequence[BoundQuery], as_of: datetime | None = None) -> list[list[Row]]:
        raise self.error

    def status(self) -> dict[str, Any]:
        return {"backend": self.name}

    def published(self) -> list[Publication]:
        return []


@pytest.fixture(scope="module")
def backend() -> RecordingBackend:
    return RecordingBackend(reference_states().backend(check_interval_s=60))


@pytest.fixture
def call(backend: RecordingBackend) -> Iterator[Any]:
    app = api_handler.create_app(ReportService(backend))
    backend.queries.clear()

    def resolve(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = app.resolve(event, FakeLambdaContext())
        return response

    yield resolve


def test_lambda_entry_point_answers_the_sample_events(
    moto_endpoint: str, backend: RecordingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the state's tables as Iceberg tables in the Glue catalog, and the Lambda's
    # environment in local mode
    write_iceberg_state(moto_endpoint, "handler_state", [V1_ROWS, V2_ROWS])
    for name, value in {
        "QUERY_BACKEND": "duckdb",
        "GLUE_DATABASE": "handler_state",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "POWERTOOLS_METRICS_NAMESPACE": "DuffBeerTest",
        "POWERTOOLS_SERVICE_NAME": "orders-api",
    }.items():
        monkeypatch.setenv(name, value)
    api_handler.default_app.cache_clear()
    aws.client.cache_clear()
    try:
        # When the sample events are handled by the Lambda handler itself
        client = api_handler.handler(load_event("api_get_orders_client.json"), FakeLambdaContext())
        products = api_handler.handler(
            load_event("api_get_sales_by_product.json"), FakeLambdaContext()
        )
        statuses = api_handler.handler(
            load_event("api_get_order_status_report.json"), FakeLambdaContext()
        )
        health = api_handler.handler(load_event("api_get_health.json"), FakeLambdaContext())
    finally:
        # Later tests must not inherit an app or clients bound to this test's server.
        api_handler.default_app.cache_clear()
        aws.client.cache_clear()
    # Then each answers 200 with JSON built from the latest publication, read with pyiceberg
    assert [r["statusCode"] for r in (client, products, statuses, health)] == [200] * 4
    assert client["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert body(client)["totals"] == {"orders": 2, "lines": 3, "units": 22, "sales": 49.0}
    assert body(client)["orders"]["next_cursor"] == encode_cursor(5678)
    assert [p["product_id"] for p in body(products)["products"]] == [105, 103, 102]
    assert body(statuses)["total_orders"] == 2
    assert body(health) == {"status": "ok", "version": __version__}


def test_health_says_only_that_it_is_up_and_status_gives_the_details(call: Any) -> None:
    health = call(api_event("/health"))
    details = call(api_event("/status"))
    assert (health["statusCode"], details["statusCode"]) == (200, 200)
    # Anyone may call /health: no backend, database, bucket, publication or error text
    assert body(health) == {"status": "ok", "version": __version__}
    # /status (behind the key on the deployed API) names the backend and what it serves
    assert body(details)["backend"] == "duckdb"
    assert body(details)["version"] == __version__
    assert body(details)["currency"] == "EUR"
    assert "publication" in body(details)


def test_an_answer_over_the_response_limit_is_a_400_that_says_how_to_narrow_it(
    backend: RecordingBackend,
) -> None:
    # Given an API whose responses may carry at most 300 bytes (Lambda's limit is 6 MB)
    app = api_handler.create_app(ReportService(backend), max_body_bytes=300)
    products = app.resolve(api_event("/sales-by-product"), FakeLambdaContext())
    small = app.resolve(api_event("/health"), FakeLambdaContext())
    # Then a report larger than that is refused with the one error body, and says why
    assert products["statusCode"] == 400
    assert products["multiValueHeaders"]["Content-Type"] == ["application/json"]
    message = body(products)["message"]
    assert message.startswith("the answer would be ") and "narrow it (channel" in message
    assert body(products)["error"] == "Bad Request"
    # And smaller answers are untouched
    assert small["statusCode"] == 200
    # And the deployed limit leaves room for headers under Lambda's 6 MB
    assert api_handler.MAX_RESPONSE_BYTES <= 6_000_000 - 100_000


def test_the_reported_version_is_the_projects() -> None:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert project["project"]["version"] == __version__


def test_client_route_without_orders(call: Any) -> None:
    # When client 1002 is asked for
    response = call(api_event("/orders/1002"))
    # Then its figures come back without an orders list
    assert response["statusCode"] == 200
    assert body(response) == {
        "client_id": 1002,
        "client_name": "Kwik-E-Mart",
        "totals": {"orders": 1, "lines": 1, "units": 10, "sales": 20.0},
        "by_status": [{"status": "delivered", "orders": 1, "lines": 1, "units": 10, "sales": 20.0}],
        "by_channel": [{"channel": "B2B", "orders": 1, "lines": 1, "units": 10, "sales": 20.0}],
    }


def test_second_page_of_orders_through_the_cursor(call: Any) -> None:
    # Given the first page's cursor
    first = body(call(api_event("/orders/1001", query={"include": ["orders"], "limit": ["1"]})))
    # When the next page is asked for with it
    second = body(
        call(
            api_event(
                "/orders/1001",
                query={"include": ["orders"], "limit": ["1"], "cursor": [first["orders"]["next_cursor"]]},
            )
        )
    )
    # Then it holds the following order and ends the listing
    assert [o["order_id"] for o in second["orders"]["items"]] == [5690]
    assert second["orders"]["next_cursor"] is None


def test_filters_on_status_report_and_lowercase_known_channel(call: Any) -> None:
    # When the status report is filtered to the 11th and channel "b2b" in lower case
    response = call(
        api_event(
            "/order-status-report",
            query={"channel": ["b2b"], "date_from": ["2026-01-11"], "date_to": ["2026-01-11"]},
        )
    )
    # Then the channel is read as the canonical B2B and only order 5679 counts
    assert response["statusCode"] == 200
    assert body(response) == {
        "filters": {"channel": "B2B", "date_from": "2026-01-11", "date_to": "2026-01-11"},
        "total_orders": 1,
        "statuses": [
            {"status": "created", "orders": 0, "lines": 0, "sales": 0.0, "share_of_orders": 0.0},
            {"status": "delivered", "orders": 1, "lines": 1, "sales": 20.0, "share_of_orders": 1.0},
            {"status": "broken", "orders": 0, "lines": 0, "sales": 0.0, "share_of_orders": 0.0},
        ],
    }


def test_an_unknown_but_well_formed_channel_is_an_empty_report(call: Any) -> None:
    response = call(api_event("/sales-by-product", query={"channel": ["Drive Thru"]}))
    assert response["statusCode"] == 200
    assert body(response)["products"] == []


def test_unknown_client_is_404(call: Any) -> None:
    response = call(api_event("/orders/424242"))
    assert response["statusCode"] == 404
    assert body(response) == {
        "status": 404,
        "error": "Not Found",
        "message": "client 424242 has no current order lines",
    }


@pytest.mark.parametrize("path", ["/nope", "/orders", "/orders/1001/lines", "/sales-by-product/x"])
def test_unknown_route_is_404(call: Any, path: str) -> None:
    response = call(api_event(path))
    assert response["statusCode"] == 404
    assert body(response)["message"] == f"no route GET {path}"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405(call: Any, method: str) -> None:
    response = call(api_event("/sales-by-product", method=method))
    assert response["statusCode"] == 405
    assert response["multiValueHeaders"]["Allow"] == ["GET"]
    assert body(response)["message"] == f"{method} is not allowed on /sales-by-product; use GET"


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("/orders/abc", None, "client_id must be a positive integer up to 2147483647, got 'abc'"),
        ("/orders/0", None, "client_id must be a positive integer up to 2147483647, got '0'"),
        ("/orders/-5", None, "client_id must be a positive integer up to 2147483647, got '-5'"),
        ("/orders/1.5", None, "client_id must be a positive integer up to 2147483647, got '1.5'"),
        (
            "/orders/2147483648",
            None,
            "client_id must be a positive integer up to 2147483647, got '2147483648'",
        ),
        ("/sales-by-product", {"date_from": ["2026-13-01"]}, "date_from is not a calendar date: '2026-13-01'"),
        ("/sales-by-product", {"date_to": ["2026-1-1"]}, "date_to must be a date as YYYY-MM-DD, got '2026-1-1'"),
        (
            "/order-status-report",
            {"date_from": ["2026-02-01"], "date_to": ["2026-01-01"]},
            "date_from (2026-02-01) is after date_to (2026-01-01)",
        ),
        (
            "/order-status-report",
            {"chanel": ["Retail"]},
            "unknown query parameter 'chanel'; this route accepts channel, date_from, date_to, as_of, format",
        ),
        (
            "/sales-by-product",
            {"channel": ["Retail", "B2B"]},
            "invalid request parameters: query.channel (each takes one value)",
        ),
        ("/orders/1001", {"include": ["lines"]}, "include accepts only 'orders', got 'lines'"),
        ("/orders/1001", {"limit": ["5"]}, "limit and cursor apply only with include=orders"),
        ("/orders/1001", {"include": ["orders"], "limit": ["0"]}, "limit must be an integer from 1 to 500, got '0'"),
        ("/orders/1001", {"include": ["orders"], "cursor": ["bm9wZQ"]}, "cursor is not one this API returned: 'bm9wZQ'"),
    ],
)
def test_malformed_parameters_are_400(
    call: Any, backend: RecordingBackend, path: str, query: dict[str, list[str]] | None, message: str
) -> None:
    response = call(api_event(path, query=query))
    assert response["statusCode"] == 400
    assert body(response) == {"status": 400, "error": "Bad Request", "message": message}
    assert backend.queries == []


INJECTIONS = [
    "1001' OR '1'='1",
    "1001; DROP TABLE order_lines",
    "1001 -- comment",
    "1001/*x*/",
    "Retail'--",
    "Retail -- x",
    "Retail;",
    '"Retail"',
    "\uff11\uff10\uff10\uff11",  # fullwidth digits 1001
    "\u0661\u0660\u0660\u0661",  # Arabic-Indic digits 1001
    "Ret\u0430il",  # Cyrillic a
    "Retail\u0000",
    "2026-01-01' OR 1=1 --",
    "\uff12\uff10\uff12\uff16-01-01",  # fullwidth year
]


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/orders/{}", None),
        ("/sales-by-product", "channel"),
        ("/sales-by-product", "date_from"),
        ("/order-status-report", "date_to"),
        ("/order-status-report", "channel"),
        ("/orders/1001", "limit"),
        ("/orders/1001", "cursor"),
        ("/orders/1001", "include"),
    ],
)
def test_injection_attempts_are_400_and_never_reach_a_query(
    call: Any, backend: RecordingBackend, value: str, path: str, name: str | None
) -> None:
    # Given a hostile value in a path or query parameter
    if name is None:
        event = api_event(path.format(value))
    else:
        query = {name: [value]}
        if name in ("limit", "cursor"):
            query["include"] = ["orders"]
        event = api_event(path, query=query)
    # When the request is handled
    response = call(event)
    # Then it is refused as a bad request (a "/" in a path parameter makes another path,
    # which no route has) and no query ran
    expected = 404 if name is None and "/" in value else 400
    assert response["statusCode"] == expected
    assert backend.queries == []


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (QueryError("Athena query q-1 ended FAILED: SYNTAX_ERROR"), 502, "the report query failed"),
        (QueryTimeoutError("q-1 did not finish"), 504, "the report query took too long; try again"),
    ],
)
def test_query_failures_map_to_gateway_errors(error: Exception, status: int, message: str) -> None:
    app = api_handler.create_app(ReportService(FailingBackend(error)))
    response = app.resolve(api_event("/sales-by-product"), FakeLambdaContext())
    assert response["statusCode"] == status
    assert body(response)["message"] == message


def test_unexpected_error_is_500_without_a_stack_trace() -> None:
    app = api_handler.create_app(ReportService(FailingBackend(RuntimeError("secret detail"))))
    response = app.resolve(api_event("/order-status-report"), FakeLambdaContext())
    assert response["statusCode"] == 500
    assert body(response) == {
        "status": 500,
        "error": "Internal Server Error",
        "message": "internal error (request 6f0e8a52-1b7c-4d9e-9a3f-2c5d8e7b1a40)",
    }
    assert "Traceback" not in response["body"]
    assert "secret detail" not in response["body"]


def test_openapi_document_lists_the_routes_and_parameters(call: Any) -> None:
    response = call(api_event("/openapi.json"))
    document = body(response)
    assert response["statusCode"] == 200
    assert document["info"]["title"] == "Duff Beer orders reports"
    assert sorted(document["paths"]) == [
        "/batches",
        "/daily-sales",
        "/health",
        "/order-status-report",
        "/orders/{client_id}",
        "/sales-by-product",
        "/status",
        "/top-clients",
    ]
    sales = document["paths"]["/sales-by-product"]["get"]
    assert [p["name"] for p in sales["parameters"]] == [
        "channel",
        "date_from",
        "date_to",
        "as_of",
        "format",
    ]
    client = document["paths"]["/orders/{client_id}"]["get"]
    assert [(p["name"], p["in"]) for p in client["parameters"]] == [
        ("client_id", "path"),
        ("include", "query"),
        ("limit", "query"),
        ("cursor", "query"),
        ("as_of", "query"),
    ]
    # as_of is an ISO-8601 UTC instant on every report route
    as_of = {p["name"]: p for p in sales["parameters"]}["as_of"]["schema"]
    assert (as_of["type"], as_of["format"]) == ("string", "date-time")
    assert {"as_of"} <= {
        p["name"] for p in document["paths"]["/order-status-report"]["get"]["parameters"]
    }


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        ("2026-01-01", "as_of must be an ISO-8601 UTC instant such as 2026-11-28T08:00:00Z, got '2026-01-01'"),
        ("2026-01-01T10:00:00+01:00", "as_of must be an ISO-8601 UTC instant such as 2026-11-28T08:00:00Z, got '2026-01-01T10:00:00+01:00'"),
        ("2026-02-30T10:00:00Z", "as_of is not a calendar time: '2026-02-30T10:00:00Z'"),
        ("2025-12-31T23:59:59Z", "as_of 2025-12-31T23:59:59+00:00 is before the first publication of the reports still kept (2026-01-01T11:00:00+00:00)"),
    ],
)
def test_malformed_or_too_early_as_of_is_400(call: Any, as_of: str, message: str) -> None:
    response = call(api_event("/sales-by-product", query={"as_of": [as_of]}))
    assert response["statusCode"] == 400
    assert body(response)["message"] == message


def test_as_of_reads_the_publication_current_then(call: Any) -> None:
    # Given publication 1 at 11:00 on the 1st (4 orders) and 2 at 10:00 on the 2nd (5)
    # When the status report is asked for as of the 1st at noon, and now
    then = body(call(api_event("/order-status-report", query={"as_of": ["2026-01-01T12:00:00Z"]})))
    now = body(call(api_event("/order-status-report")))
    # Then each counts the orders of its publication
    assert (then["total_orders"], now["total_orders"]) == (4, 5)


def test_openapi_document_declares_every_status_a_route_can_answer(call: Any) -> None:
    document = body(call(api_event("/openapi.json")))
    statuses = {
        path: sorted(operation["get"]["responses"]) for path, operation in document["paths"].items()
    }
    assert statuses == {
        "/orders/{client_id}": ["200", "400", "403", "404", "405", "500", "502", "504"],
        "/sales-by-product": ["200", "400", "403", "405", "500", "502", "504"],
        "/order-status-report": ["200", "400", "403", "405", "500", "502", "504"],
        "/health": ["200", "400", "403", "405", "500"],
        "/status": ["200", "400", "403", "405", "500"],
        "/daily-sales": ["200", "400", "403", "405", "500", "502", "504"],
        "/top-clients": ["200", "400", "403", "405", "500", "502", "504"],
        "/batches": ["200", "400", "403", "405", "500"],
    }
    # Every error has the one error body; a 405 also says which method to use
    client = document["paths"]["/orders/{client_id}"]["get"]["responses"]
    for status in ("400", "403", "404", "405", "500", "502", "504"):
        schema = client[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status
    assert client["405"]["headers"] == {"Allow": {"schema": {"type": "string"}}}
    error_body = document["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["message"]
    assert set(error_body["properties"]) == {"message", "status", "error"}
    # Parameters are documented with the shapes the handlers accept, never as nullable
    parameters = {
        p["name"]: p["schema"]
        for p in document["paths"]["/orders/{client_id}"]["get"]["parameters"]
        + document["paths"]["/sales-by-product"]["get"]["parameters"]
    }
    assert (parameters["client_id"]["type"], parameters["client_id"]["maximum"]) == (
        "integer",
        2147483647,
    )
    assert parameters["date_from"]["format"] == "date"
    assert parameters["include"]["enum"] == ["orders"]
    assert all("anyOf" not in schema for schema in parameters.values())


# The reference state's products, hand-computed from V1_ROWS and V2_ROWS (test_api_support),
# as CSV: sales to the cent, CRLF line ends, the best-selling product first.
PRODUCTS_CSV = (
    "product_id,product_description,orders,units,sales,volume_l\r\n"
    "105,Duff Special,1,24,96.00,24.0\r\n"
    "103,Duff Lite,2,22,44.00,11.0\r\n"
    "102,Duff Classic,2,10,25.00,3.3\r\n"
    "104,Duff Dry,1,8,24.00,2.0\r\n"
)


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ({"format": ["csv"]}, "application/json"),
        (None, "text/csv"),
        (None, "text/csv, application/json;q=0.5"),
        (None, "text/*"),
    ],
)
def test_rows_as_csv_by_parameter_or_accept_header(
    call: Any, query: dict[str, list[str]] | None, accept: str
) -> None:
    response = call(api_event("/sales-by-product", query=query, accept=accept))
    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"] == ["text/csv; charset=utf-8; header=present"]
    assert response["multiValueHeaders"]["Content-Disposition"] == ['attachment; filename="sales-by-product.csv"']
    assert response["body"] == PRODUCTS_CSV


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        (None, "application/json"),
        (None, "*/*"),
        (None, "text/csv;q=0.5, application/json"),
        ({"format": ["json"]}, "text/csv"),
    ],
)
def test_json_stays_the_default_and_format_json_wins(
    call: Any, query: dict[str, list[str]] | None, accept: str
) -> None:
    response = call(api_event("/sales-by-product", query=query, accept=accept))
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert [p["product_id"] for p in body(response)["products"]] == [105, 103, 102, 104]


def test_every_row_route_answers_its_rows_as_csv_named_after_its_filters(call: Any) -> None:
    filters = {"channel": ["retail"], "date_from": ["2026-01-10"], "date_to": ["2026-01-11"]}
    for path, rows_key in [
        ("/order-status-report", "statuses"),
        ("/daily-sales", "days"),
        ("/sales-by-product", "products"),
    ]:
        as_json = body(call(api_event(path, query=filters)))
        as_csv = call(api_event(path, query={**filters, "format": ["csv"]}))
        name = path.strip("/") + "_channel-Retail_2026-01-10_to_2026-01-11.csv"
        disposition = as_csv["multiValueHeaders"]["Content-Disposition"]
        assert disposition == [f'attachment; filename="{name}"'], path
        header, *lines = list(csv.reader(io.StringIO(as_csv["body"])))
        # One CSV line per JSON row, the same fields in the same order
        assert len(lines) == len(as_json[rows_key]) > 0, path
        assert [line[0] for line in lines] == [str(next(iter(r.values()))) for r in as_json[rows_key]]
        assert header[0] == next(iter(as_json[rows_key][0])), path
    clients = call(api_event("/top-clients", query={"search": ["moe"]}, accept="text/csv"))
    assert clients["body"] == "client_id,client_name,orders,lines,units,sales\r\n1001,Moe's Tavern,2,3,22,49.00\r\n"
    assert clients["multiValueHeaders"]["Content-Disposition"] == ['attachment; filename="top-clients_search-moe.csv"']


def test_csv_is_only_for_row_routes_and_errors_stay_json(call: Any) -> None:
    # A client's report is a document, not rows: it stays JSON whatever the Accept header
    client = call(api_event("/orders/1001", accept="text/csv"))
    assert (client["statusCode"], body(client)["client_id"]) == (200, 1001)
    # An error is the one JSON error body, CSV asked or not
    bad_date = call(api_event("/daily-sales", query={"date_from": ["2026-13-01"]}, accept="text/csv"))
    assert (bad_date["statusCode"], bad_date["multiValueHeaders"]["Content-Type"]) == (400, ["application/json"])
    bad_format = call(api_event("/daily-sales", query={"format": ["xlsx"]}))
    assert (bad_format["statusCode"], body(bad_format)["message"]) == (400, "format must be json or csv, got 'xlsx'")
    # format is a parameter of the row routes only
    assert call(api_event("/orders/1001", query={"format": ["csv"]}))["statusCode"] == 400


def test_openapi_document_offers_csv_on_every_row_route(call: Any) -> None:
    paths = body(call(api_event("/openapi.json")))["paths"]
    for path in ("/sales-by-product", "/order-status-report", "/daily-sales", "/top-clients"):
        operation = paths[path]["get"]
        content = operation["responses"]["200"]["content"]
        assert sorted(content) == ["application/json", "text/csv"], path
        assert content["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
        [format_param] = [p for p in operation["parameters"] if p["name"] == "format"]
        assert (format_param["schema"]["type"], format_param["schema"]["enum"]) == ("string", ["json", "csv"])
    assert sorted(paths["/orders/{client_id}"]["get"]["responses"]["200"]["content"]) == ["application/json"]


def _outside(schema: dict[str, Any]) -> list[str]:
    """Values a parameter's documented schema excludes."""
    values = []
    if "maximum" in schema:
        values += [str(schema["minimum"] - 1), str(schema["maximum"] + 1)]
    if "enum" in schema:
        values.append("x" + "".join(schema["enum"]))
    if "maxLength" in schema:
        values.append("y" * (schema["maxLength"] + 1))
    if schema.get("format") in ("date", "date-time"):
        values.append("2026-02-30")
    return values


def _inside(schema: dict[str, Any]) -> list[str]:
    """The edge values a parameter's documented schema allows."""
    if "maximum" in schema:
        return [str(schema["minimum"]), str(schema["maximum"])]
    return [str(value) for value in schema.get("enum", ())]


def test_every_parameter_is_validated_as_the_openapi_document_declares_it(call: Any) -> None:
    # Given the parameters as the API documents them (one declaration gives the document,
    # the validation and the message)
    document = body(call(api_event("/openapi.json")))
    checked = 0
    for template, operations in document["paths"].items():
        for parameter in operations["get"].get("parameters", []):
            name, schema = parameter["name"], parameter["schema"]
            for value in _outside(schema):
                # When a value the document excludes is sent
                if parameter["in"] == "path":
                    response = call(api_event(template.replace("{" + name + "}", value)))
                else:
                    path = template.replace("{client_id}", "1001")
                    response = call(api_event(path, query={name: [value]}))
                # Then it is a 400 whose message names the parameter
                assert response["statusCode"] == 400, (template, name, value)
                assert body(response)["message"].startswith(f"{name} "), (template, name, value)
                checked += 1
            for value in _inside(schema) if template != "/batches" else ():
                # And the edge values it allows are accepted
                query = {name: [value]} if parameter["in"] == "query" else None
                if name == "limit" and template == "/orders/{client_id}":
                    query = {"include": ["orders"], "limit": [value]}
                path = template.replace("{client_id}", value if name == "client_id" else "1001")
                response = call(api_event(path, query=query))
                assert response["statusCode"] in (200, 404), (template, name, value)
                checked += 1
    assert checked > 30
