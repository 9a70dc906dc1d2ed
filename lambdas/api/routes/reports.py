"""The report routes: a client's report, sales by product, orders by status, sales by day and
the top clients, each read from one publication of the current state."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import Field

from duffbeer.contract import INT_MAX, STATUSES
from lambdas.api import csv_export, overview, params
from lambdas.api.declarations import (
    ALWAYS,
    QUERIES,
    REPORT_PARAMS,
    AsOfParam,
    ChannelParam,
    DateFromParam,
    DateToParam,
    FormatParam,
    RouteTable,
    check_query,
    limit_parser,
    parsed_by,
    responses,
    row_responses,
)
from lambdas.api.queries import ClientReport, OrderStatusReport, ReportService, SalesByProduct

ClientIdParam = Annotated[
    int,
    Path(description="The client id, a positive integer."),
    Field(ge=1, le=INT_MAX),
    parsed_by(params.parse_client_id),
]
IncludeParam = Annotated[
    Literal["orders"] | None,
    Query(description="'orders' adds the client's orders, paged."),
    parsed_by(params.parse_include),
]
OrdersLimitParam = Annotated[
    int | None,
    Query(
        description=f"Orders per page, 1-{params.MAX_PAGE_SIZE} (default "
        f"{params.DEFAULT_PAGE_SIZE}); only with include=orders."
    ),
    Field(ge=1, le=params.MAX_PAGE_SIZE),
    limit_parser(params.MAX_PAGE_SIZE),
]
# A cursor is a token this API hands out: its shape is documented, its decoding checked by
# the route.
OrdersCursorParam = Annotated[
    str | None,
    Query(
        description="next_cursor of the previous page; only with include=orders.",
        json_schema_extra={"pattern": "^[A-Za-z0-9_-]{1,64}$"},
    ),
]
SearchParam = Annotated[
    str | None,
    Query(description="Only clients whose name contains this text (any case) or whose id it is."),
    Field(min_length=1, max_length=overview.MAX_SEARCH_CHARS),
    parsed_by(overview.parse_search),
]
TopLimitParam = Annotated[
    int | None,
    Query(
        description=f"How many clients, 1-{overview.MAX_TOP_CLIENTS} (default "
        f"{overview.DEFAULT_TOP_CLIENTS})."
    ),
    Field(ge=1, le=overview.MAX_TOP_CLIENTS),
    limit_parser(overview.MAX_TOP_CLIENTS),
]


def reports_router(service: ReportService, table: RouteTable) -> Router:
    """The report routes, bound to `service`."""
    router = Router()

    @table.get(
        router,
        "/orders/<client_id>",
        summary="A client's totals, by status and by channel; optionally its orders, paged.",
        tags=["reports"],
        responses=responses(*ALWAYS, HTTPStatus.NOT_FOUND, *QUERIES),
    )
    def client_orders(
        client_id: ClientIdParam,
        include: IncludeParam = None,
        limit: OrdersLimitParam = None,
        cursor: OrdersCursorParam = None,
        as_of: AsOfParam = None,
    ) -> ClientReport:
        check_query(router, params.CLIENT_PARAMS)
        return service.client_report(client_id, params.orders_page(include, limit, cursor), as_of)

    @table.get(
        router,
        "/sales-by-product",
        summary="Per product: orders, units, sales and volume, by channel; by sales, descending.",
        tags=["reports"],
        responses=row_responses(SalesByProduct, *ALWAYS, *QUERIES),
    )
    def sales_by_product(
        channel: ChannelParam = None,
        date_from: DateFromParam = None,
        date_to: DateToParam = None,
        as_of: AsOfParam = None,
        format: FormatParam = None,
    ) -> SalesByProduct:
        check_query(router, REPORT_PARAMS)
        return service.sales_by_product(params.report_filters(channel, date_from, date_to, as_of))

    @table.get(
        router,
        "/order-status-report",
        summary=f"Per status ({', '.join(STATUSES)}): orders, lines, sales, share of orders.",
        tags=["reports"],
        responses=row_responses(OrderStatusReport, *ALWAYS, *QUERIES),
    )
    def order_status_report(
        channel: ChannelParam = None,
        date_from: DateFromParam = None,
        date_to: DateToParam = None,
        as_of: AsOfParam = None,
        format: FormatParam = None,
    ) -> OrderStatusReport:
        check_query(router, REPORT_PARAMS)
        filters = params.report_filters(channel, date_from, date_to, as_of)
        return service.order_status_report(filters)

    @table.get(
        router,
        "/daily-sales",
        summary="Per day with current lines: units and sales; oldest first.",
        tags=["reports"],
        responses=row_responses(overview.DailySales, *ALWAYS, *QUERIES),
    )
    def daily_sales(
        channel: ChannelParam = None,
        date_from: DateFromParam = None,
        date_to: DateToParam = None,
        as_of: AsOfParam = None,
        format: FormatParam = None,
    ) -> overview.DailySales:
        check_query(router, REPORT_PARAMS)
        filters = params.report_filters(channel, date_from, date_to, as_of)
        return overview.daily_sales(service.backend, filters)

    @table.get(
        router,
        "/top-clients",
        summary="The clients with the most sales within the filters (channel, days); "
        "searchable; and how many clients match.",
        tags=["reports"],
        responses=row_responses(overview.TopClients, *ALWAYS, *QUERIES),
    )
    def top_clients(
        *,
        channel: ChannelParam = None,
        date_from: DateFromParam = None,
        date_to: DateToParam = None,
        search: SearchParam = None,
        limit: TopLimitParam = None,
        as_of: AsOfParam = None,
        format: FormatParam = None,
    ) -> overview.TopClients:
        check_query(router, (*overview.TOP_CLIENTS_PARAMS, csv_export.FORMAT_PARAM))
        filters = params.report_filters(channel, date_from, date_to, as_of)
        return overview.top_clients(service.backend, filters, search, limit)

    return router
