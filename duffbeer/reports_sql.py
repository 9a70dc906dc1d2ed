"""Report SQL shared by the Glue Catalog views (Athena) and the local DuckDB backend.

The text is written in the subset that Athena (Trino) and DuckDB both accept, so the same
strings run in AWS and locally. Relations are referenced unqualified; Athena resolves them
in the `duffbeer_reports` database, DuckDB in the connection where the local backend
registers `order_lines` over the published Parquet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from duffbeer.contract import STATUSES
from duffbeer.naming import ORDER_LINES_TABLE, ORDERS_SUMMARY_VIEW

CURRENT_LINES_VIEW = "order_lines_current"
ORDERS_PER_CLIENT_VIEW = "orders_per_client"
SALES_BY_PRODUCT_VIEW = "sales_by_product"
ORDER_STATUS_VIEW = "order_status_report"

# The current version of every line key: the row from the batch whose source object was
# created last (ties broken by batch id), whatever order the batches were processed in.
CURRENT_LINES_SQL = f"""
SELECT client_id, client_name, order_id, product_id, product_description, product_price,
       product_ccf, product_volume, status, line_total, line_volume_l, batch_id,
       source_event_time, point_of_sale_channel, order_date
FROM (
    SELECT l.*,
           row_number() OVER (
               PARTITION BY order_id, product_id
               ORDER BY source_event_time DESC, batch_id DESC
           ) AS version_rank
    FROM {ORDER_LINES_TABLE} l
) ranked
WHERE version_rank = 1
""".strip()

# The seed's summary table: exactly client_id INT, client_name STRING, total_orders INT,
# total_sales DOUBLE; each order counted once, the latest client name.
ORDERS_SUMMARY_SQL = f"""
SELECT CAST(client_id AS INTEGER) AS client_id,
       max_by(client_name, source_event_time) AS client_name,
       CAST(count(DISTINCT order_id) AS INTEGER) AS total_orders,
       CAST(sum(line_total) AS DOUBLE) AS total_sales
FROM {CURRENT_LINES_VIEW}
GROUP BY client_id
""".strip()

ORDERS_PER_CLIENT_SQL = f"""
SELECT client_id,
       max_by(client_name, source_event_time) AS client_name,
       count(DISTINCT order_id) AS total_orders,
       count(*) AS total_lines,
       sum(product_ccf) AS total_units,
       sum(line_total) AS total_sales
FROM {CURRENT_LINES_VIEW}
GROUP BY client_id
""".strip()

SALES_BY_PRODUCT_SQL = f"""
SELECT product_id,
       max_by(product_description, source_event_time) AS product_description,
       point_of_sale_channel,
       count(DISTINCT order_id) AS orders,
       sum(product_ccf) AS units,
       sum(line_total) AS total_sales,
       sum(line_volume_l) AS total_volume_l
FROM {CURRENT_LINES_VIEW}
GROUP BY product_id, point_of_sale_channel
""".strip()

ORDER_STATUS_SQL = f"""
SELECT status,
       count(DISTINCT order_id) AS orders,
       count(*) AS lines,
       sum(line_total) AS total_sales
FROM {CURRENT_LINES_VIEW}
GROUP BY status
""".strip()

# Catalog views in creation order (a view may only reference the ones before it).
CATALOG_VIEWS: dict[str, str] = {
    CURRENT_LINES_VIEW: CURRENT_LINES_SQL,
    ORDERS_SUMMARY_VIEW: ORDERS_SUMMARY_SQL,
    ORDERS_PER_CLIENT_VIEW: ORDERS_PER_CLIENT_SQL,
    SALES_BY_PRODUCT_VIEW: SALES_BY_PRODUCT_SQL,
    ORDER_STATUS_VIEW: ORDER_STATUS_SQL,
}

# --- The REST API's report queries -------------------------------------------------------
#
# Each API query reads one small derived relation (one of API_RELATIONS, defined over
# CURRENT_LINES_VIEW). Athena gets the relation as a WITH clause in front of the query text
# and computes it per request; the local DuckDB backend materialises every relation once per
# snapshot of the published batches. The query text after the WITH clause is the same
# string in both.
#
# User-supplied values never appear in these strings: they are bound to the positional `?`
# markers, and the optional filters are chosen from the constant fragments below.

API_CLIENT_REPORT = "api_client_report"
API_CLIENT_ORDERS = "api_client_orders"
API_PRODUCT_DAILY = "api_product_daily"
API_STATUS_ORDERS = "api_status_orders"
API_STATUS_DAILY = "api_status_daily"

# Per client: totals (all_statuses = 1, all_channels = 1), per status (all_channels = 1)
# and per channel (all_statuses = 1).
CLIENT_REPORT_SQL = f"""
SELECT client_id, status, point_of_sale_channel,
       grouping(status) AS all_statuses,
       grouping(point_of_sale_channel) AS all_channels,
       max_by(client_name, source_event_time) AS client_name,
       count(DISTINCT order_id) AS orders,
       count(*) AS lines,
       sum(product_ccf) AS units,
       sum(line_total) AS total_sales
FROM {CURRENT_LINES_VIEW}
GROUP BY GROUPING SETS ((client_id), (client_id, status), (client_id, point_of_sale_channel))
""".strip()

# Lines per status of each order, one column per contract status (`<status>_lines`).
_STATUS_LINE_COUNTS = ",\n       ".join(
    f"count_if(status = '{status}') AS {status}_lines" for status in STATUSES
)

# Per client and order. An order spanning several days or channels reports the earliest.
CLIENT_ORDERS_SQL = f"""
SELECT client_id, order_id,
       min(order_date) AS order_date,
       min(point_of_sale_channel) AS point_of_sale_channel,
       count(*) AS lines,
       sum(product_ccf) AS units,
       sum(line_total) AS total_sales,
       {_STATUS_LINE_COUNTS}
FROM {CURRENT_LINES_VIEW}
GROUP BY client_id, order_id
""".strip()

# Per product, channel and day. In the current lines the line key (order_id, product_id) is
# unique, so a product's lines within any set of days and channels belong to distinct orders:
# `orders` is additive and needs no DISTINCT when days are summed.
PRODUCT_DAILY_SQL = f"""
SELECT product_id, point_of_sale_channel, order_date,
       max_by(product_description, source_event_time) AS product_description,
       max(source_event_time) AS last_event_time,
       count(*) AS orders,
       sum(product_ccf) AS units,
       sum(line_total) AS total_sales,
       sum(line_volume_l) AS total_volume_l
FROM {CURRENT_LINES_VIEW}
GROUP BY product_id, point_of_sale_channel, order_date
""".strip()

# Per status, channel, day and order: exact distinct orders under any filter.
STATUS_ORDERS_SQL = f"""
SELECT status, point_of_sale_channel, order_date, order_id,
       count(*) AS lines,
       sum(line_total) AS total_sales
FROM {CURRENT_LINES_VIEW}
GROUP BY status, point_of_sale_channel, order_date, order_id
""".strip()

# Distinct orders per status (all_statuses = 0) and over all statuses (= 1) in each channel
# and day. Summing them over days and channels is exact only when no order has lines in
# two (channel, day) cells: see ORDERS_SPANNING_PARTITIONS_SQL.
STATUS_DAILY_SQL = f"""
SELECT status, point_of_sale_channel, order_date,
       grouping(status) AS all_statuses,
       count(DISTINCT order_id) AS orders,
       count(*) AS lines,
       sum(line_total) AS total_sales
FROM {CURRENT_LINES_VIEW}
GROUP BY GROUPING SETS ((status, point_of_sale_channel, order_date),
                        (point_of_sale_channel, order_date))
""".strip()

# Orders whose current lines lie in more than one (channel, day) partition.
ORDERS_SPANNING_PARTITIONS_SQL = f"""
SELECT count(*) AS orders
FROM (
    SELECT order_id
    FROM {CURRENT_LINES_VIEW}
    GROUP BY order_id
    HAVING count(DISTINCT point_of_sale_channel) > 1 OR count(DISTINCT order_date) > 1
) spanning
""".strip()

API_RELATIONS: dict[str, str] = {
    API_CLIENT_REPORT: CLIENT_REPORT_SQL,
    API_CLIENT_ORDERS: CLIENT_ORDERS_SQL,
    API_PRODUCT_DAILY: PRODUCT_DAILY_SQL,
    API_STATUS_ORDERS: STATUS_ORDERS_SQL,
    API_STATUS_DAILY: STATUS_DAILY_SQL,
}

FILTER_CHANNEL = "point_of_sale_channel = ?"
FILTER_DATE_FROM = "order_date >= CAST(? AS DATE)"
FILTER_DATE_TO = "order_date <= CAST(? AS DATE)"

CLIENT_REPORT_API_SQL = f"""
SELECT status, point_of_sale_channel, all_statuses, all_channels, client_name,
       orders, lines, units, total_sales
FROM {API_CLIENT_REPORT}
WHERE client_id = ?
""".strip()

# One page of the client's orders in order_id order (keyset paging: order ids are > 0, so
# the first page binds 0).
CLIENT_ORDERS_API_SQL = f"""
SELECT order_id, order_date, point_of_sale_channel, lines, units, total_sales,
       {", ".join(f"{status}_lines" for status in STATUSES)}
FROM {API_CLIENT_ORDERS}
WHERE client_id = ? AND order_id > ?
ORDER BY order_id
LIMIT ?
""".strip()

# One row per product (all_channels = 1) and one per product and channel (all_channels = 0).
SALES_BY_PRODUCT_API_SQL = f"""
SELECT product_id, point_of_sale_channel,
       grouping(point_of_sale_channel) AS all_channels,
       max_by(product_description, last_event_time) AS product_description,
       sum(orders) AS orders,
       sum(units) AS units,
       sum(total_sales) AS total_sales,
       sum(total_volume_l) AS total_volume_l
FROM {API_PRODUCT_DAILY}
{{where}}
GROUP BY GROUPING SETS ((product_id), (product_id, point_of_sale_channel))
""".strip()

# One row per status (all_statuses = 0) and the distinct orders over all statuses (= 1).
ORDER_STATUS_API_SQL = f"""
SELECT status,
       grouping(status) AS all_statuses,
       count(DISTINCT order_id) AS orders,
       sum(lines) AS lines,
       sum(total_sales) AS total_sales
FROM {API_STATUS_ORDERS}
{{where}}
GROUP BY GROUPING SETS ((status), ())
""".strip()

# The same result from the per-partition counts; exact when no order spans partitions.
ORDER_STATUS_DAILY_API_SQL = f"""
SELECT status, all_statuses,
       sum(orders) AS orders,
       sum(lines) AS lines,
       sum(total_sales) AS total_sales
FROM {API_STATUS_DAILY}
{{where}}
GROUP BY status, all_statuses
""".strip()

SqlValue = int | str | date


@dataclass(frozen=True)
class BoundQuery:
    """A query text, the values for its `?` markers in order, and the API relation it reads.

    `within_partitions` is an equivalent, cheaper query that is exact only when no order has
    lines in two (channel, day) partitions; a backend that knows this holds may run it.
    """

    sql: str
    params: tuple[SqlValue, ...]
    relation: str
    within_partitions: BoundQuery | None = None


def _filtered(
    template: str,
    relation: str,
    channel: str | None,
    date_from: date | None,
    date_to: date | None,
) -> BoundQuery:
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
    return BoundQuery(template.replace("{where}", where), tuple(params), relation)


def client_report_query(client_id: int) -> BoundQuery:
    return BoundQuery(CLIENT_REPORT_API_SQL, (client_id,), API_CLIENT_REPORT)


def client_orders_query(client_id: int, after_order_id: int, limit: int) -> BoundQuery:
    return BoundQuery(CLIENT_ORDERS_API_SQL, (client_id, after_order_id, limit), API_CLIENT_ORDERS)


def sales_by_product_query(
    channel: str | None = None, date_from: date | None = None, date_to: date | None = None
) -> BoundQuery:
    return _filtered(SALES_BY_PRODUCT_API_SQL, API_PRODUCT_DAILY, channel, date_from, date_to)


def channels_query() -> BoundQuery:
    """The channels present in the current lines."""
    return BoundQuery(
        f"SELECT DISTINCT point_of_sale_channel FROM {API_PRODUCT_DAILY} "
        "ORDER BY point_of_sale_channel",
        (),
        API_PRODUCT_DAILY,
    )


def order_status_query(
    channel: str | None = None, date_from: date | None = None, date_to: date | None = None
) -> BoundQuery:
    exact = _filtered(ORDER_STATUS_API_SQL, API_STATUS_ORDERS, channel, date_from, date_to)
    cheap = _filtered(ORDER_STATUS_DAILY_API_SQL, API_STATUS_DAILY, channel, date_from, date_to)
    return replace(exact, within_partitions=cheap)


def with_relation(query: BoundQuery) -> str:
    """The query as one statement for Athena: its API relation as a WITH clause."""
    return f"WITH {query.relation} AS (\n{API_RELATIONS[query.relation]}\n)\n{query.sql}"
