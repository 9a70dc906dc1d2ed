"""Report SQL over the current state's tables, one text for Athena (Trino) and DuckDB.

Every query reads the tables of one publication of the state (duffbeer.state), written in
the SQL subset both engines accept. Table references are placeholders (`{client_report}`)
that the backend resolves for the publication it reads: on Athena
`"<database>"."<table>" FOR VERSION AS OF <snapshot id>`, locally the table loaded from
that snapshot. Nothing here ranks line versions: the state already holds the current
lines and the report figures at the grain the routes filter on (docs/adr/0045), so a
request reads one client's bucket or one small table.

User values never appear in these strings: they are bound to the positional `?` markers,
and the optional filters are chosen from constant fragments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from duffbeer import contract, state
from duffbeer.contract import STATUSES
from duffbeer.errors import TableNotPublishedError

Columns = tuple[tuple[str, str], ...]

# The state tables the API reads (order_lines_current and orders_summary serve the views).
API_TABLES: tuple[str, ...] = (
    state.CLIENT_REPORT_TABLE,
    state.CLIENT_ORDERS_TABLE,
    state.CLIENT_ORDER_CELLS_TABLE,
    state.PRODUCT_DAILY_TABLE,
    state.STATUS_DAILY_TABLE,
    state.SPANNING_ORDER_CELLS_TABLE,
)

_PLACEHOLDER = re.compile(r"\{(" + "|".join(sorted(state.STATE_TABLES)) + r")\}")

SqlValue = int | str | date


@dataclass(frozen=True)
class BoundQuery:
    """A query text with table placeholders, the values of its `?` markers in order, and
    the state tables it reads."""

    name: str
    sql: str
    params: tuple[SqlValue, ...]
    tables: tuple[str, ...]

    def render(self, references: Mapping[str, str]) -> str:
        """The text with every table placeholder replaced by its reference."""

        def reference(match: re.Match[str]) -> str:
            table = match.group(1)
            if table not in self.tables:
                raise KeyError(f"query {self.name} names table {table} it does not declare")
            if table not in references:
                raise TableNotPublishedError(
                    f"this report needs the state table {table}, which the reports it reads "
                    "predate (it was added by an upgrade; the next merged batch builds it)"
                )
            return references[table]

        return _PLACEHOLDER.sub(reference, self.sql)


# --- The REST API's report queries -------------------------------------------------------

FILTER_CHANNEL = "point_of_sale_channel = ?"
FILTER_DATE_FROM = "order_date >= CAST(? AS DATE)"
FILTER_DATE_TO = "order_date <= CAST(? AS DATE)"

# One client's totals (all_statuses = all_channels = 1), per status and per channel. The
# table is bucketed by client_id: the equality reads that client's bucket only.
CLIENT_REPORT_SQL = f"""
SELECT status, point_of_sale_channel, all_statuses, all_channels, client_name,
       orders, lines, units, total_sales
FROM {{{state.CLIENT_REPORT_TABLE}}}
WHERE client_id = ?
""".strip()

# One page of the client's orders in order_id order (keyset paging: order ids are > 0, so
# the first page binds 0).
CLIENT_ORDERS_SQL = f"""
SELECT order_id, order_date, point_of_sale_channel, lines, units, total_sales,
       {", ".join(f"{status}_lines" for status in STATUSES)}
FROM {{{state.CLIENT_ORDERS_TABLE}}}
WHERE client_id = ? AND order_id > ?
ORDER BY order_id
LIMIT ?
""".strip()

# The recency of a product_daily cell's most recent line, as an orderable row.
_CELL_RECENCY = "ROW(latest_event_time, latest_batch_id, latest_order_id)"

# One row per product (all_channels = 1) and one per product and channel (all_channels = 0)
# over the matching days. A product's lines belong to distinct orders (the line key holds
# the product), so its orders add up over cells. The description is that of the most recent
# line within the filter.
SALES_BY_PRODUCT_SQL = f"""
SELECT product_id, point_of_sale_channel,
       grouping(point_of_sale_channel) AS all_channels,
       max_by(product_description, {_CELL_RECENCY}) AS product_description,
       sum(orders) AS orders,
       sum(units) AS units,
       sum(total_sales) AS total_sales,
       sum(total_volume_l) AS total_volume_l
FROM {{{state.PRODUCT_DAILY_TABLE}}}
{{where}}
GROUP BY GROUPING SETS ((product_id), (product_id, point_of_sale_channel))
""".strip()

# Per status (all_statuses = 0) and over all statuses (= 1): distinct orders, lines, sales
# within the filter. status_daily counts an order once per (channel, day) cell, so an order
# whose lines lie in n matching cells is counted n times; spanning_order_cells holds one row
# per such order, cell and status (and per order and cell, status null), so per status the
# excess is its rows minus its distinct orders. Exact for any channel and date filter.
ORDER_STATUS_SQL = f"""
SELECT status, all_statuses,
       sum(orders) AS orders,
       sum(lines) AS lines,
       sum(total_sales) AS total_sales
FROM (
    SELECT status, all_statuses, orders, lines, total_sales
    FROM {{{state.STATUS_DAILY_TABLE}}}
    {{where}}
    UNION ALL
    SELECT status,
           CASE WHEN status IS NULL THEN 1 ELSE 0 END AS all_statuses,
           count(DISTINCT order_id) - count(*) AS orders,
           CAST(NULL AS BIGINT) AS lines,
           CAST(NULL AS DECIMAL(38, 2)) AS total_sales
    FROM {{{state.SPANNING_ORDER_CELLS_TABLE}}}
    {{where}}
    GROUP BY status
) cells
GROUP BY status, all_statuses
""".strip()

CHANNELS_SQL = f"""
SELECT DISTINCT point_of_sale_channel
FROM {{{state.STATUS_DAILY_TABLE}}}
ORDER BY point_of_sale_channel
""".strip()


def _filtered(
    template: str, channel: str | None, date_from: date | None, date_to: date | None
) -> tuple[str, tuple[SqlValue, ...]]:
    """The template with its `{where}` lines holding the given filters (or dropped), and
    the filter values in the order of one `{where}`."""
    parts: list[str] = []
    params: list[SqlValue] = []
    for fragment, value in (
        (FILTER_CHANNEL, channel),
        (FILTER_DATE_FROM, date_from),
        (FILTER_DATE_TO, date_to),
    ):
        if value is not None:
            parts.append(fragment)
            params.append(value)
    where = "WHERE " + " AND ".join(parts) if parts else ""
    lines = template.replace("{where}", where).split("\n")
    return "\n".join(line for line in lines if line.strip()), tuple(params)


def client_report_query(client_id: int) -> BoundQuery:
    return BoundQuery(
        state.CLIENT_REPORT_TABLE,
        CLIENT_REPORT_SQL,
        (client_id,),
        (state.CLIENT_REPORT_TABLE,),
    )


def client_orders_query(client_id: int, after_order_id: int, limit: int) -> BoundQuery:
    return BoundQuery(
        state.CLIENT_ORDERS_TABLE,
        CLIENT_ORDERS_SQL,
        (client_id, after_order_id, limit),
        (state.CLIENT_ORDERS_TABLE,),
    )


def sales_by_product_query(
    channel: str | None = None, date_from: date | None = None, date_to: date | None = None
) -> BoundQuery:
    sql, params = _filtered(SALES_BY_PRODUCT_SQL, channel, date_from, date_to)
    return BoundQuery(
        "sales_by_product",
        sql,
        params,
        (state.PRODUCT_DAILY_TABLE,),
    )


def order_status_query(
    channel: str | None = None, date_from: date | None = None, date_to: date | None = None
) -> BoundQuery:
    sql, params = _filtered(ORDER_STATUS_SQL, channel, date_from, date_to)
    return BoundQuery(
        "order_status",
        sql,
        # The filter applies to both branches of the union.
        params + params,
        (state.STATUS_DAILY_TABLE, state.SPANNING_ORDER_CELLS_TABLE),
    )


# Per day over the matching products and channels: units and sales (for the daily chart).
DAILY_SALES_SQL = f"""
SELECT order_date, sum(units) AS units, sum(total_sales) AS total_sales
FROM {{{state.PRODUCT_DAILY_TABLE}}}
{{where}}
GROUP BY order_date
ORDER BY order_date
""".strip()

# One row per client with its orders, lines, units and sales over all days: client_report's
# row for the channel (or all channels); optionally only those whose name contains a text
# or whose id is a number. client_report is small (one row per client, status and
# channel), so this reads every bucket. The name comes from the client's totals row, which
# always carries it.
_CLIENTS_ALL_DAYS = f"""
SELECT c.client_id, t.client_name, c.orders, c.lines, c.units, c.total_sales
FROM {{{state.CLIENT_REPORT_TABLE}}} c
JOIN {{{state.CLIENT_REPORT_TABLE}}} t
  ON t.client_id = c.client_id AND t.all_statuses = 1 AND t.all_channels = 1
WHERE c.all_statuses = 1 AND {{scope}}
{{search}}
""".strip()
_TOP_CLIENTS_ALL = "c.all_channels = 1"
_TOP_CLIENTS_CHANNEL = "c.all_channels = 0 AND c.point_of_sale_channel = ?"
# The same over a date range: the client_order_cells rows of the matching days (every
# client bucket; the files' date order skips row groups), an order counted once however
# many matching cells it has.
_CLIENTS_IN_DATES = f"""
SELECT c.client_id, t.client_name,
       count(DISTINCT c.order_id) AS orders,
       sum(c.lines) AS lines,
       sum(c.units) AS units,
       sum(c.total_sales) AS total_sales
FROM {{{state.CLIENT_ORDER_CELLS_TABLE}}} c
JOIN {{{state.CLIENT_REPORT_TABLE}}} t
  ON t.client_id = c.client_id AND t.all_statuses = 1 AND t.all_channels = 1
WHERE {{scope}}
{{search}}
GROUP BY c.client_id, t.client_name
""".strip()
# `!` escapes the LIKE wildcards of the user's text, which is bound, never formatted in.
_TOP_CLIENTS_SEARCH = (
    "AND (lower(t.client_name) LIKE ? ESCAPE '!' OR CAST(c.client_id AS VARCHAR) = ?)"
)
# The best clients first; each row also says how many clients match (counted before the
# limit, in the same scan).
TOP_CLIENTS_SQL = """
SELECT m.*, count(*) OVER () AS matching_clients FROM (
{clients}
) m
ORDER BY m.total_sales DESC, m.client_id
LIMIT ?
""".strip()


def daily_sales_query(
    channel: str | None = None, date_from: date | None = None, date_to: date | None = None
) -> BoundQuery:
    sql, params = _filtered(DAILY_SALES_SQL, channel, date_from, date_to)
    return BoundQuery("daily_sales", sql, params, (state.PRODUCT_DAILY_TABLE,))


def like_pattern(text: str) -> str:
    """A LIKE pattern matching names that contain `text` (lower-cased), wildcards escaped."""
    escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def _matching_clients(
    channel: str | None, search: str | None, date_from: date | None, date_to: date | None
) -> tuple[str, tuple[SqlValue, ...], tuple[str, ...]]:
    """The per-client rows within the filters: their SQL, its values and its tables."""
    params: list[SqlValue] = []
    tables: tuple[str, ...] = (state.CLIENT_REPORT_TABLE,)
    if date_from is None and date_to is None:
        template = _CLIENTS_ALL_DAYS
        scope = _TOP_CLIENTS_ALL
        if channel is not None:
            scope = _TOP_CLIENTS_CHANNEL
            params.append(channel)
    else:
        template = _CLIENTS_IN_DATES
        tables = (state.CLIENT_ORDER_CELLS_TABLE, state.CLIENT_REPORT_TABLE)
        parts = []
        for fragment, value in (
            ("c." + FILTER_CHANNEL, channel),
            ("c." + FILTER_DATE_FROM, date_from),
            ("c." + FILTER_DATE_TO, date_to),
        ):
            if value is not None:
                parts.append(fragment)
                params.append(value)
        scope = " AND ".join(parts)
    where_search = ""
    if search is not None:
        where_search = _TOP_CLIENTS_SEARCH
        params += [like_pattern(search), search]
    sql = template.replace("{scope}", scope).replace("{search}", where_search)
    lines = [line for line in sql.split("\n") if line.strip()]
    return "\n".join(lines), tuple(params), tables


def top_clients_query(
    channel: str | None,
    search: str | None,
    limit: int,
    date_from: date | None = None,
    date_to: date | None = None,
) -> BoundQuery:
    clients, params, tables = _matching_clients(channel, search, date_from, date_to)
    sql = TOP_CLIENTS_SQL.replace("{clients}", clients)
    return BoundQuery("top_clients", sql, (*params, limit), tables)


def channels_query() -> BoundQuery:
    """The channels present in the state."""
    return BoundQuery("channels", CHANNELS_SQL, (), (state.STATUS_DAILY_TABLE,))


# --- The Athena views ---------------------------------------------------------------------
#
# Ad hoc users query the state's tables by name (`order_lines_current`, `orders_summary`)
# and these views over them, which read each table's current (published) snapshot. Their
# columns and types are those the reports always had, so saved queries keep working. Sums
# are cast to the declared types, so that Trino and DuckDB agree on them (DuckDB sums
# bigints to hugeint).

ORDERS_PER_CLIENT_VIEW = "orders_per_client"
SALES_BY_PRODUCT_VIEW = "sales_by_product"
ORDER_STATUS_VIEW = "order_status_report"

VIEW_COLUMNS: dict[str, Columns] = {
    ORDERS_PER_CLIENT_VIEW: (
        ("client_id", "int"),
        ("client_name", "string"),
        ("total_orders", "bigint"),
        ("total_lines", "bigint"),
        ("total_units", "bigint"),
        ("total_sales", contract.SUM_MONEY_TYPE),
    ),
    SALES_BY_PRODUCT_VIEW: (
        ("product_id", "int"),
        ("product_description", "string"),
        ("point_of_sale_channel", "string"),
        ("orders", "bigint"),
        ("units", "bigint"),
        ("total_sales", contract.SUM_MONEY_TYPE),
        ("total_volume_l", contract.SUM_VOLUME_TYPE),
    ),
    ORDER_STATUS_VIEW: (
        ("status", "string"),
        ("orders", "bigint"),
        ("lines", "bigint"),
        ("total_sales", contract.SUM_MONEY_TYPE),
    ),
}

_SQL_TYPES = {
    "int": "INTEGER",
    "bigint": "BIGINT",
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "double": "DOUBLE",
}


def sql_type(glue_type: str) -> str:
    """The SQL spelling (Trino and DuckDB alike) of a contract column type."""
    if glue_type.startswith("decimal("):
        return glue_type.upper()
    return _SQL_TYPES[glue_type]


_VIEW_TEMPLATES: dict[str, str] = {
    ORDERS_PER_CLIENT_VIEW: f"""
SELECT client_id, client_name,
       orders AS total_orders,
       lines AS total_lines,
       units AS total_units,
       total_sales
FROM {{{state.CLIENT_REPORT_TABLE}}}
WHERE all_statuses = 1 AND all_channels = 1
""".strip(),
    SALES_BY_PRODUCT_VIEW: f"""
SELECT product_id,
       max_by(product_description, {_CELL_RECENCY}) AS product_description,
       point_of_sale_channel,
       CAST(sum(orders) AS BIGINT) AS orders,
       CAST(sum(units) AS BIGINT) AS units,
       CAST(sum(total_sales) AS {contract.SUM_MONEY_TYPE.upper()}) AS total_sales,
       CAST(sum(total_volume_l) AS {contract.SUM_VOLUME_TYPE.upper()}) AS total_volume_l
FROM {{{state.PRODUCT_DAILY_TABLE}}}
GROUP BY product_id, point_of_sale_channel
""".strip(),
    ORDER_STATUS_VIEW: f"""
SELECT status,
       CAST(sum(orders) AS BIGINT) AS orders,
       CAST(sum(lines) AS BIGINT) AS lines,
       CAST(sum(total_sales) AS {contract.SUM_MONEY_TYPE.upper()}) AS total_sales
FROM (
    SELECT status, orders, lines, total_sales
    FROM {{{state.STATUS_DAILY_TABLE}}}
    WHERE all_statuses = 0
    UNION ALL
    SELECT status,
           count(DISTINCT order_id) - count(*) AS orders,
           CAST(NULL AS BIGINT) AS lines,
           CAST(NULL AS DECIMAL(38, 2)) AS total_sales
    FROM {{{state.SPANNING_ORDER_CELLS_TABLE}}}
    WHERE status IS NOT NULL
    GROUP BY status
) cells
GROUP BY status
""".strip(),
}


def table_references(database: str, snapshots: Mapping[str, int] | None = None) -> dict[str, str]:
    """The quoted Athena name of every state table: pinned to a publication's snapshots
    (`FOR VERSION AS OF`) when given (the tables it names), else the table's current
    snapshot (the views)."""
    return {
        table: f'"{database}"."{table}"'
        + (f" FOR VERSION AS OF {snapshots[table]}" if snapshots is not None else "")
        for table in state.STATE_TABLES
        # A publication made before a table was added does not name it.
        if snapshots is None or table in snapshots
    }


def catalog_views(database: str) -> dict[str, str]:
    """The Athena views over the state's tables, in creation order: view name -> SQL."""
    references = table_references(database)
    return {
        name: _PLACEHOLDER.sub(lambda m: references[m.group(1)], template)
        for name, template in _VIEW_TEMPLATES.items()
    }
