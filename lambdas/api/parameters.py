"""The API's parameters, each declared once: its type, its `Query`/`Path` marker with the
description, its `Field` bounds, and the parser (lambdas/api/params.py) that validates it.
The OpenAPI document, the validation and the 400's message all come from that declaration
(docs/adr/0046)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from duffbeer.contract import CHANNEL_FILTER_PATTERN, INT_MAX
from duffbeer.errors import InvalidParameterError
from lambdas.api import batches, csv_export, overview, params

# The type of the pydantic error a parser's refusal becomes.
INVALID_PARAMETER = "invalid_parameter"


def parsed_by(parse: Callable[[str], Any]) -> BeforeValidator:
    """Validate a parameter's text with `parse`: its InvalidParameterError becomes the
    request's validation error, with the message the 400 carries. A repeated parameter (a
    list) is left to the type check, which refuses it."""

    def validate(raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        try:
            return parse(raw)
        except InvalidParameterError as e:
            raise PydanticCustomError(INVALID_PARAMETER, "{message}", {"message": str(e)}) from e

    return BeforeValidator(validate)


def limit_parser(maximum: int) -> BeforeValidator:
    return parsed_by(partial(params.parse_limit, maximum=maximum))


ChannelParam = Annotated[
    str | None,
    Query(
        description="Only this point-of-sale channel (known channels match in any case).",
        json_schema_extra={
            # The filter's pattern, without two hyphens in a row (no SQL comment look-alike).
            "pattern": "^(?!.*--)" + CHANNEL_FILTER_PATTERN.pattern.removeprefix("^"),
        },
    ),
    parsed_by(params.parse_channel),
]
_DATE = {"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
DateFromParam = Annotated[
    date | None,
    Query(
        description="Only order dates on or after this day (YYYY-MM-DD); not after date_to.",
        json_schema_extra=_DATE,
    ),
    parsed_by(partial(params.parse_date, "date_from")),
]
DateToParam = Annotated[
    date | None,
    Query(
        description="Only order dates on or before this day (YYYY-MM-DD).", json_schema_extra=_DATE
    ),
    parsed_by(partial(params.parse_date, "date_to")),
]
AsOfParam = Annotated[
    datetime | None,
    Query(
        description="The report as it stood at this instant (ISO-8601 UTC, e.g. "
        "2026-11-28T08:00:00Z): after the last batch published at or before it. A 400 "
        "before the first publication still kept.",
        json_schema_extra={"pattern": f"^{params.INSTANT.pattern}$"},
    ),
    parsed_by(params.parse_as_of),
]
FormatParam = Annotated[
    Literal["json", "csv"] | None,
    Query(
        description="csv: the rows as CSV (RFC 4180, a header line, amounts to the cent) "
        "instead of JSON; the same as sending Accept: text/csv.",
    ),
    parsed_by(params.parse_format),
]
# The filters of the row routes, and the format of their answer.
REPORT_PARAMS = (*params.FILTER_PARAMS, csv_export.FORMAT_PARAM)


def check_query(router: Router, allowed: Sequence[str]) -> None:
    """Refuse query parameters the route does not take, or one given twice."""
    raw = router.current_event.multi_value_query_string_parameters or {}
    params.check_query_names(raw, allowed)


# --- One route's parameters -------------------------------------------------------------

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
BatchesLimitParam = Annotated[
    int | None,
    Query(
        description=f"Runs per page, 1-{batches.MAX_PAGE_SIZE} "
        f"(default {batches.DEFAULT_PAGE_SIZE})."
    ),
    Field(ge=1, le=batches.MAX_PAGE_SIZE),
    limit_parser(batches.MAX_PAGE_SIZE),
]
BatchesCursorParam = Annotated[
    str | None,
    Query(
        description="next_cursor of the previous page.",
        json_schema_extra={"pattern": "^[A-Za-z0-9_-]{1,400}$"},
    ),
]
