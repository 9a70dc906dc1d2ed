"""Report SQL shared by the Glue Catalog views (Athena) and the local DuckDB backend.

The text is written in the subset that Athena (Trino) and DuckDB both accept, so the same
strings run in AWS and locally. Relations are referenced unqualified; Athena resolves them
in the `duffbeer_reports` database, DuckDB in the connection where the local backend
registers `order_lines` over the published Parquet.
"""

from __future__ import annotations

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
