"""Validation of the API's path and query parameters into typed values, before any query."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from duffbeer.contract import CHANNEL_FILTER_PATTERN, INT_MAX, canonical_channel
from duffbeer.errors import InvalidParameterError
from lambdas.api import csv_export

# ASCII only: Python's \d also matches other scripts' digits, which int() would accept.
_POSITIVE_INT = re.compile(r"[0-9]{1,10}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CURSOR_PREFIX = "after:"

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
INCLUDE_ORDERS = "orders"

FILTER_PARAMS = ("channel", "date_from", "date_to", "as_of")
CLIENT_PARAMS = ("include", "limit", "cursor", "as_of")
# An ISO-8601 instant in UTC: a date, a time to the second (fraction optional), then Z or
# +00:00 (an instant in another offset is refused rather than converted behind the scenes).
INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|\+00:00)"
)

QueryParams = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class ReportFilters:
    """Optional filters of the report routes, already validated."""

    channel: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    # The reports as they stood at this instant (None: as they stand now).
    as_of: datetime | None = None


@dataclass(frozen=True)
class OrdersPage:
    """Which page of a client's orders to return: the orders after `after_order_id`."""

    limit: int = DEFAULT_PAGE_SIZE
    after_order_id: int = 0


def parse_client_id(raw: str) -> int:
    if not _POSITIVE_INT.fullmatch(raw) or not 0 < int(raw) <= INT_MAX:
        raise InvalidParameterError(
            f"client_id must be a positive integer up to {INT_MAX}, got {_shown(raw)}"
        )
    return int(raw)


def check_query_names(params: QueryParams, allowed: Sequence[str]) -> None:
    """Unknown or repeated query parameters are errors, not silently ignored."""
    for name, given in params.items():
        if name not in allowed:
            raise InvalidParameterError(
                f"unknown query parameter {_shown(name)}; this route accepts "
                + (", ".join(allowed) or "none")
            )
        if len(given) != 1:
            raise InvalidParameterError(f"query parameter {name} must be given once")


def report_filters(
    channel: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    as_of: datetime | None = None,
) -> ReportFilters:
    """The report filters from parameters parsed one by one, checked together."""
    if date_from and date_to and date_from > date_to:
        raise InvalidParameterError(
            f"date_from ({date_from.isoformat()}) is after date_to ({date_to.isoformat()})"
        )
    return ReportFilters(channel, date_from, date_to, as_of)


def parse_as_of(raw: str) -> datetime:
    """The `as_of` instant: ISO-8601 in UTC (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)."""
    if not INSTANT.fullmatch(raw):
        raise InvalidParameterError(
            f"as_of must be an ISO-8601 UTC instant such as 2026-11-28T08:00:00Z, got {_shown(raw)}"
        )
    try:
        return datetime.fromisoformat(raw).astimezone(UTC)
    except ValueError as e:
        raise InvalidParameterError(f"as_of is not a calendar time: {_shown(raw)}") from e


def parse_format(raw: str) -> str:
    """The `format` query parameter of the row routes: json or csv."""
    if raw in (csv_export.JSON, csv_export.CSV):
        return raw
    raise InvalidParameterError(f"format must be json or csv, got {_shown(raw)}")


def parse_include(raw: str) -> str:
    if raw != INCLUDE_ORDERS:
        raise InvalidParameterError(f"include accepts only '{INCLUDE_ORDERS}', got {_shown(raw)}")
    return raw


def orders_page(include: str | None, limit: int | None, cursor: str | None) -> OrdersPage | None:
    """The requested page of orders, or None when the orders are not asked for."""
    if include is None:
        if limit is not None or cursor is not None:
            raise InvalidParameterError("limit and cursor apply only with include=orders")
        return None
    after = decode_cursor(cursor) if cursor is not None else 0
    return OrdersPage(limit=limit or DEFAULT_PAGE_SIZE, after_order_id=after)


def parse_limit(raw: str, maximum: int) -> int:
    """A route's `limit` parameter: an integer from 1 to `maximum`."""
    if not _POSITIVE_INT.fullmatch(raw) or not 0 < int(raw) <= maximum:
        raise InvalidParameterError(
            f"limit must be an integer from 1 to {maximum}, got {_shown(raw)}"
        )
    return int(raw)


def encode_cursor(last_order_id: int) -> str:
    token = base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_order_id}".encode())
    return token.decode("ascii").rstrip("=")


def decode_cursor(raw: str) -> int:
    error = InvalidParameterError(f"cursor is not one this API returned: {_shown(raw)}")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", raw):
        raise error
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise error from e
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not _POSITIVE_INT.fullmatch(number):
        raise error
    if int(number) > INT_MAX:
        raise error
    return int(number)


def parse_channel(raw: str) -> str:
    # The value is bound as a parameter anyway; rejecting SQL-looking input early keeps
    # probes out of the query layer and its logs.
    if not CHANNEL_FILTER_PATTERN.fullmatch(raw) or "--" in raw:
        raise InvalidParameterError(
            "channel must be 1-64 letters, digits, spaces or . _ & - (starting with a letter "
            f"or digit), got {_shown(raw)}"
        )
    return canonical_channel(raw)


def parse_date(name: str, raw: str) -> date:
    if not _ISO_DATE.fullmatch(raw):
        raise InvalidParameterError(f"{name} must be a date as YYYY-MM-DD, got {_shown(raw)}")
    try:
        return date.fromisoformat(raw)
    except ValueError as e:
        raise InvalidParameterError(f"{name} is not a calendar date: {_shown(raw)}") from e


def _shown(raw: str) -> str:
    """The offending value for an error message: quoted, escaped and cut short."""
    return ascii(raw[:40] + ("..." if len(raw) > 40 else ""))
