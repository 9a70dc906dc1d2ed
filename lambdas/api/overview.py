"""The dashboard's extra reports: sales per day and the top clients, over the same backends."""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Any

# pydantic (the OpenAPI schema of the responses) needs this TypedDict before Python 3.12.
from typing_extensions import TypedDict

from duffbeer import reports_sql
from duffbeer.errors import InvalidParameterError
from lambdas.api.params import ReportFilters
from lambdas.api.queries import Filters, QueryBackend, money

TOP_CLIENTS_PARAMS = ("channel", "date_from", "date_to", "search", "limit", "as_of")
DEFAULT_TOP_CLIENTS = 10
MAX_TOP_CLIENTS = 100
MAX_SEARCH_CHARS = 64


class DaySales(TypedDict):
    date: str
    units: int
    sales: float


class DailySales(TypedDict):
    filters: Filters
    days: list[DaySales]


class TopClient(TypedDict):
    client_id: int
    client_name: str
    orders: int
    lines: int
    units: int
    sales: float


class TopClientsFilters(TypedDict):
    channel: str | None
    date_from: str | None
    date_to: str | None
    search: str | None


class TopClients(TypedDict):
    filters: TopClientsFilters
    # How many clients the filters match (`clients` lists the first `limit` of them).
    matching_clients: int
    clients: list[TopClient]


def daily_sales(backend: QueryBackend, filters: ReportFilters) -> DailySales:
    """Units and sales of each day with current lines within the filters, oldest first."""
    query = reports_sql.daily_sales_query(filters.channel, filters.date_from, filters.date_to)
    rows = backend.fetch([query], filters.as_of)[0]
    return {
        "filters": _filters(filters),
        "days": [
            {
                "date": _iso(r["order_date"]),
                "units": int(r["units"] or 0),
                "sales": money(r["total_sales"]),
            }
            for r in rows
        ],
    }


def _filters(filters: ReportFilters) -> Filters:
    return {
        "channel": filters.channel,
        "date_from": filters.date_from.isoformat() if filters.date_from else None,
        "date_to": filters.date_to.isoformat() if filters.date_to else None,
    }


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def parse_search(raw: str) -> str:
    """A client search text: 1-64 printable characters (a name part or a client id)."""
    text = raw.strip()
    printable = all(unicodedata.category(ch)[0] != "C" for ch in text)
    if not text or len(text) > MAX_SEARCH_CHARS or not printable:
        raise InvalidParameterError(
            f"search must be 1-{MAX_SEARCH_CHARS} printable characters, got {raw[:40]!a}"
        )
    return text


def top_clients(
    backend: QueryBackend, filters: ReportFilters, search: str | None, limit: int | None
) -> TopClients:
    """The `limit` clients with the most sales within the filters (channel, days), best
    first, optionally only those `search` finds; and how many clients match."""
    query = reports_sql.top_clients_query(
        filters.channel, search, limit or DEFAULT_TOP_CLIENTS, filters.date_from, filters.date_to
    )
    rows = backend.fetch([query], filters.as_of)[0]
    return {
        "filters": {**_filters(filters), "search": search},
        "matching_clients": int(rows[0]["matching_clients"]) if rows else 0,
        "clients": [
            {
                "client_id": int(r["client_id"]),
                "client_name": str(r["client_name"]),
                "orders": int(r["orders"] or 0),
                "lines": int(r["lines"] or 0),
                "units": int(r["units"] or 0),
                "sales": money(r["total_sales"]),
            }
            for r in rows
        ],
    }
