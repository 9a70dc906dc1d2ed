"""The report routes: a client's report, sales by product, orders by status, sales by day and
the top clients, each read from one publication of the current state."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.event_handler.api_gateway import Router

from duffbeer.contract import STATUSES
from lambdas.api import csv_export, overview, params
from lambdas.api.declarations import ALWAYS, QUERIES, RouteTable, responses, row_responses
from lambdas.api.parameters import (
    REPORT_PARAMS,
    AsOfParam,
    ChannelParam,
    ClientIdParam,
    DateFromParam,
    DateToParam,
    FormatParam,
    IncludeParam,
    OrdersCursorParam,
    OrdersLimitParam,
    SearchParam,
    TopLimitParam,
    check_query,
)
from lambdas.api.queries import ClientReport, OrderStatusReport, ReportService, SalesByProduct


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
