"""The query layer: the three reports built from the shared report SQL, on either backend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NotRequired, Protocol

# pydantic (the OpenAPI schema of the responses) needs this TypedDict before Python 3.12.
from typing_extensions import TypedDict

from duffbeer import reports_sql
from duffbeer.contract import STATUSES
from duffbeer.errors import ClientNotFoundError
from duffbeer.state import Publication
from lambdas.api.params import OrdersPage, ReportFilters, encode_cursor

Row = dict[str, Any]

_CENT = Decimal("0.01")
_MILLILITRE = Decimal("0.001")


class QueryBackend(Protocol):
    """Runs report queries; `fetch` answers each query with its rows, in order, all of them
    from one publication of the state: the latest, or the one current at `as_of` (an
    InvalidParameterError when `as_of` is before the first one still kept)."""

    name: str

    def fetch(
        self, queries: Sequence[reports_sql.BoundQuery], as_of: datetime | None = None
    ) -> list[list[Row]]: ...

    def status(self) -> dict[str, Any]: ...

    def published(self) -> list[Publication]:
        """The retained publications of the state, oldest first (cached as `fetch` caches
        them; a QueryError when they cannot be read)."""
        ...


class Figures(TypedDict):
    orders: int
    lines: int
    units: int
    sales: float


class StatusFigures(Figures):
    status: str


class ChannelFigures(Figures):
    channel: str


class OrderSummary(TypedDict):
    order_id: int
    order_date: str
    channel: str
    lines: int
    units: int
    sales: float
    lines_by_status: dict[str, int]


class OrdersList(TypedDict):
    items: list[OrderSummary]
    next_cursor: str | None


class ClientReport(TypedDict):
    client_id: int
    client_name: str
    totals: Figures
    by_status: list[StatusFigures]
    by_channel: list[ChannelFigures]
    orders: NotRequired[OrdersList]


class Filters(TypedDict):
    channel: str | None
    date_from: str | None
    date_to: str | None


class ProductChannelSales(TypedDict):
    channel: str
    orders: int
    units: int
    sales: float
    volume_l: float


class ProductSales(TypedDict):
    product_id: int
    product_description: str
    orders: int
    units: int
    sales: float
    volume_l: float
    by_channel: list[ProductChannelSales]


class SalesByProduct(TypedDict):
    filters: Filters
    products: list[ProductSales]


class StatusLine(TypedDict):
    status: str
    orders: int
    lines: int
    sales: float
    share_of_orders: float


class OrderStatusReport(TypedDict):
    filters: Filters
    total_orders: int
    statuses: list[StatusLine]


def money(value: Any) -> float:
    """Exact sums become JSON numbers only here, rounded half up to cents."""
    return float(Decimal(str(value or 0)).quantize(_CENT, rounding=ROUND_HALF_UP))


def litres(value: Any) -> float:
    return float(Decimal(str(value or 0)).quantize(_MILLILITRE, rounding=ROUND_HALF_UP))


def _int(value: Any) -> int:
    return int(value or 0)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _status_rank(status: str) -> tuple[int, str]:
    return (STATUSES.index(status) if status in STATUSES else len(STATUSES), status)


class ReportService:
    """The API's reports over one backend; results are JSON-ready dicts."""

    def __init__(self, backend: QueryBackend) -> None:
        self.backend = backend

    def client_report(
        self, client_id: int, page: OrdersPage | None = None, as_of: datetime | None = None
    ) -> ClientReport:
        queries = [reports_sql.client_report_query(client_id)]
        if page is not None:
            # One extra row tells whether another page follows.
            queries.append(
                reports_sql.client_orders_query(client_id, page.after_order_id, page.limit + 1)
            )
        results = self.backend.fetch(queries, as_of)
        rows = results[0]
        totals = next((r for r in rows if r["all_statuses"] and r["all_channels"]), None)
        if totals is None or not _int(totals["lines"]):
            raise ClientNotFoundError(f"client {client_id} has no current order lines")
        report: ClientReport = {
            "client_id": client_id,
            "client_name": str(totals["client_name"]),
            "totals": _figures(totals),
            "by_status": [
                {"status": str(r["status"]), **_figures(r)}
                for r in sorted(
                    (r for r in rows if not r["all_statuses"]),
                    key=lambda r: _status_rank(str(r["status"])),
                )
            ],
            "by_channel": [
                {"channel": str(r["point_of_sale_channel"]), **_figures(r)}
                for r in sorted(
                    (r for r in rows if not r["all_channels"]),
                    key=lambda r: str(r["point_of_sale_channel"]),
                )
            ],
        }
        if page is not None:
            report["orders"] = _orders_list(results[1], page.limit)
        return report

    def sales_by_product(self, filters: ReportFilters) -> SalesByProduct:
        query = reports_sql.sales_by_product_query(
            filters.channel, filters.date_from, filters.date_to
        )
        rows = self.backend.fetch([query], filters.as_of)[0]
        channels: dict[int, list[ProductChannelSales]] = {}
        for r in rows:
            if not r["all_channels"]:
                channels.setdefault(_int(r["product_id"]), []).append(
                    {
                        "channel": str(r["point_of_sale_channel"]),
                        "orders": _int(r["orders"]),
                        "units": _int(r["units"]),
                        "sales": money(r["total_sales"]),
                        "volume_l": litres(r["total_volume_l"]),
                    }
                )
        products: list[ProductSales] = [
            {
                "product_id": _int(r["product_id"]),
                "product_description": str(r["product_description"]),
                "orders": _int(r["orders"]),
                "units": _int(r["units"]),
                "sales": money(r["total_sales"]),
                "volume_l": litres(r["total_volume_l"]),
                "by_channel": sorted(
                    channels.get(_int(r["product_id"]), []),
                    key=lambda c: (-c["sales"], c["channel"]),
                ),
            }
            for r in rows
            if r["all_channels"]
        ]
        products.sort(key=lambda p: (-p["sales"], p["product_id"]))
        return {"filters": _filters(filters), "products": products}

    def order_status_report(self, filters: ReportFilters) -> OrderStatusReport:
        query = reports_sql.order_status_query(filters.channel, filters.date_from, filters.date_to)
        rows = self.backend.fetch([query], filters.as_of)[0]
        overall = next((r for r in rows if r["all_statuses"]), None)
        total_orders = _int(overall["orders"]) if overall else 0
        found = {str(r["status"]): r for r in rows if not r["all_statuses"]}
        statuses: list[StatusLine] = []
        for status in sorted(set(STATUSES) | set(found), key=_status_rank):
            r = found.get(status, {})
            orders = _int(r.get("orders"))
            statuses.append(
                {
                    "status": status,
                    "orders": orders,
                    "lines": _int(r.get("lines")),
                    "sales": money(r.get("total_sales")),
                    "share_of_orders": round(orders / total_orders, 4) if total_orders else 0.0,
                }
            )
        return {"filters": _filters(filters), "total_orders": total_orders, "statuses": statuses}


def _figures(row: Row) -> Figures:
    return {
        "orders": _int(row["orders"]),
        "lines": _int(row["lines"]),
        "units": _int(row["units"]),
        "sales": money(row["total_sales"]),
    }


def _orders_list(rows: list[Row], limit: int) -> OrdersList:
    items: list[OrderSummary] = [
        {
            "order_id": _int(r["order_id"]),
            "order_date": _iso(r["order_date"]),
            "channel": str(r["point_of_sale_channel"]),
            "lines": _int(r["lines"]),
            "units": _int(r["units"]),
            "sales": money(r["total_sales"]),
            "lines_by_status": {s: _int(r[f"{s}_lines"]) for s in STATUSES},
        }
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return {"items": items, "next_cursor": encode_cursor(items[-1]["order_id"]) if more else None}


def _filters(filters: ReportFilters) -> Filters:
    return {
        "channel": filters.channel,
        "date_from": filters.date_from.isoformat() if filters.date_from else None,
        "date_to": filters.date_to.isoformat() if filters.date_to else None,
    }
