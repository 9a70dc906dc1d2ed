"""The report routes' rows as CSV (RFC 4180), for `Accept: text/csv` or `format=csv`."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

FORMAT_PARAM = "format"
JSON, CSV = "json", "csv"
TEXT_CSV = "text/csv"
# RFC 4180's media type, saying the first line names the columns.
CSV_CONTENT_TYPE = "text/csv; charset=utf-8; header=present"

# Text a spreadsheet would run as a formula (names come from uploaded files).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CsvTable:
    """Which list of a route's JSON body becomes the CSV, and its columns in order."""

    name: str
    rows_key: str
    columns: tuple[str, ...]
    text_columns: frozenset[str] = frozenset()
    money_columns: frozenset[str] = frozenset({"sales"})


# The routes that return rows, by path. Nested lists (a product's sales by channel) stay in
# the JSON: a CSV row is one row of the route's table, as the reports page shows it.
TABLES: dict[str, CsvTable] = {
    "/sales-by-product": CsvTable(
        "sales-by-product",
        "products",
        ("product_id", "product_description", "orders", "units", "sales", "volume_l"),
        frozenset({"product_description"}),
    ),
    "/order-status-report": CsvTable(
        "order-status-report",
        "statuses",
        ("status", "orders", "lines", "sales", "share_of_orders"),
        frozenset({"status"}),
    ),
    "/daily-sales": CsvTable("daily-sales", "days", ("date", "units", "sales")),
    "/top-clients": CsvTable(
        "top-clients",
        "clients",
        ("client_id", "client_name", "orders", "lines", "units", "sales"),
        frozenset({"client_name"}),
    ),
}


def chosen_format(format_param: str | None, accept: str | None) -> str:
    """`format` when given; else csv when the Accept header ranks text/csv above
    application/json (the most specific matching range gives a type its quality), else json."""
    if format_param is not None:
        return format_param
    ranges = _media_ranges(accept or "")
    return CSV if _quality(ranges, TEXT_CSV) > _quality(ranges, "application/json") else JSON


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *parameters = (field.strip() for field in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    return ranges


def _quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    for candidate in (media_type, media_type.partition("/")[0] + "/*", "*/*"):
        matching = [quality for media, quality in ranges if media == candidate]
        if matching:
            return max(matching)
    return 0.0


def render(table: CsvTable, body: Mapping[str, Any]) -> str:
    """The body's rows under a header line of column names; CRLF line ends (RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    for row in body[table.rows_key]:
        writer.writerow(_field(table, column, row[column]) for column in table.columns)
    return out.getvalue()


def _field(table: CsvTable, column: str, value: Any) -> str:
    if value is None:
        return ""
    if column in table.money_columns:
        return f"{Decimal(str(value)):.2f}"
    text = str(value)
    if column in table.text_columns and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def file_name(table: CsvTable, body: Mapping[str, Any], as_of: str | None) -> str:
    """Names the table and its filters, as the reports page names its exports:
    sales-by-product_channel-Online_2026-11-17_to_2026-11-19.csv"""
    filters = body.get("filters") or {}
    parts = [table.name]
    if filters.get("channel"):
        parts.append(f"channel-{filters['channel']}")
    if filters.get("search"):
        parts.append(f"search-{filters['search']}")
    if filters.get("date_from") or filters.get("date_to"):
        parts.append(f"{filters.get('date_from') or 'start'}_to_{filters.get('date_to') or 'end'}")
    if as_of:
        parts.append(f"as-of-{as_of}")
    return _UNSAFE_IN_NAME.sub("-", "_".join(parts)) + ".csv"
