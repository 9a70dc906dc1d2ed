"""The report SQL over the state tables: the Athena views run in DuckDB over hand-written
tables, with the catalog's column names and types; placeholders, snapshot pins, parameters."""
# ruff: noqa: E501  (the expected rows read best one line each)

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from duffbeer import reports_sql, state
from tests.unit.test_api_support import MALL, MOE, SPANNING_ROWS, V2_ROWS, Rows, arrow_type


def state_database(rows: Mapping[str, Rows]) -> Any:
    """Every state table of one publication in DuckDB, in a schema named like the Glue
    database, typed from the contract."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("CREATE SCHEMA db")
    for name, table in state.STATE_TABLES.items():
        columns = table.columns
        definition = ", ".join(f"{c} {reports_sql.sql_type(k)}" for c, k in columns)
        connection.execute(f"CREATE TABLE db.{name} ({definition})")
        data = pa.table(
            {c: [r[i] for r in rows[name]] for i, (c, _) in enumerate(columns)},
            schema=pa.schema([(c, arrow_type(k)) for c, k in columns]),
        )
        connection.register("rows", data)
        connection.execute(f"INSERT INTO db.{name} BY NAME SELECT * FROM rows")
        connection.unregister("rows")
    return connection


def create_views(connection: Any, views: Mapping[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    result = {}
    for name, sql in views.items():
        connection.execute(f"CREATE VIEW {name}_view AS {sql}")
        result[name] = connection.execute(f"SELECT * FROM {name}_view ORDER BY ALL").fetchall()
    return result


PLAIN = {name: f"db.{name}" for name in state.STATE_TABLES}

# The views' columns as the Glue catalog declares them for Athena users, in creation order.
CATALOG_VIEW_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "orders_per_client": [
        ("client_id", "int"), ("client_name", "string"), ("total_orders", "bigint"),
        ("total_lines", "bigint"), ("total_units", "bigint"), ("total_sales", "decimal(38,2)"),
    ],
    "sales_by_product": [
        ("product_id", "int"), ("product_description", "string"), ("point_of_sale_channel", "string"),
        ("orders", "bigint"), ("units", "bigint"), ("total_sales", "decimal(38,2)"),
        ("total_volume_l", "decimal(38,3)"),
    ],
    "order_status_report": [("status", "string"), ("orders", "bigint"), ("lines", "bigint"), ("total_sales", "decimal(38,2)")],
}


def test_views_over_the_state_give_the_current_figures() -> None:
    # Given publication 2 of the reference state
    connection = state_database(V2_ROWS)
    # When the Athena views are defined over its tables
    views = create_views(connection, reports_sql.catalog_views("db"))
    # Then each gives the figures of the current lines, each order counted once
    assert views["orders_per_client"] == [
        (1001, MOE, 2, 3, 22, Decimal("49.00")),
        (1002, "Kwik-E-Mart", 1, 1, 10, Decimal("20.00")),
        (1003, "Krusty Burger", 1, 1, 8, Decimal("24.00")),
        (1004, MALL, 1, 1, 24, Decimal("96.00")),
    ]
    assert views["sales_by_product"] == [
        (102, "Duff Classic", "Online", 1, 4, Decimal("10.00"), Decimal("1.320")),
        (102, "Duff Classic", "Retail", 1, 6, Decimal("15.00"), Decimal("1.980")),
        (103, "Duff Lite", "B2B", 1, 10, Decimal("20.00"), Decimal("5.000")),
        (103, "Duff Lite", "Retail", 1, 12, Decimal("24.00"), Decimal("6.000")),
        (104, "Duff Dry", "Online", 1, 8, Decimal("24.00"), Decimal("2.000")),
        (105, "Duff Special", "Retail", 1, 24, Decimal("96.00"), Decimal("24.000")),
    ]
    assert views["order_status_report"] == [
        ("broken", 1, 1, Decimal("24.00")),
        ("created", 2, 2, Decimal("120.00")),
        ("delivered", 3, 3, Decimal("45.00")),
    ]


def test_status_view_counts_orders_spanning_cells_once() -> None:
    views = create_views(state_database(SPANNING_ROWS), reports_sql.catalog_views("db"))
    # 9000 (two cells) and 9001 (two cells) count once per status they have lines in
    assert views["order_status_report"] == [
        ("created", 3, 4, Decimal("24.00")),
        ("delivered", 2, 3, Decimal("23.00")),
    ]
    # Per product and channel, the description of the cell's most recent line
    assert [(p, d, c) for p, d, c, *_ in views["sales_by_product"]] == [
        (102, "Duff Classic", "Retail"),
        (102, "Duff Classic Online", "Online"),
        (103, "Duff Lite", "B2B"),
        (103, "Duff Lite Renamed", "Retail"),
        (104, "Duff Dry", "Retail"),
        (105, "Duff Special", "Retail"),
    ]


def test_views_keep_the_catalog_columns_and_types() -> None:
    # Given the views over the state's tables
    connection = state_database(V2_ROWS)
    views = reports_sql.catalog_views("db")
    for name, sql in views.items():
        connection.execute(f"CREATE VIEW {name}_view AS {sql}")
        described = [(r[0], r[1]) for r in connection.execute(f"DESCRIBE {name}_view").fetchall()]
        # Then each has the columns and types the catalog declares for it
        declared = CATALOG_VIEW_COLUMNS[name]
        assert described == [(c, reports_sql.sql_type(k)) for c, k in declared], name
    assert list(views) == list(CATALOG_VIEW_COLUMNS)
    assert {n: list(c) for n, c in reports_sql.VIEW_COLUMNS.items()} == CATALOG_VIEW_COLUMNS


def test_views_name_the_tables_by_database_and_api_queries_pin_snapshots() -> None:
    views = reports_sql.catalog_views("duffbeer_reports")
    assert 'FROM "duffbeer_reports"."client_report"' in views["orders_per_client"]
    assert all("{" not in sql and "VERSION AS OF" not in sql for sql in views.values())
    # The API's queries read every table at the snapshot of one publication
    snapshots = {table: 7000 + i for i, table in enumerate(state.STATE_TABLES)}
    references = reports_sql.table_references("duffbeer_reports", snapshots)
    text = reports_sql.order_status_query("Retail").render(references)
    assert '"duffbeer_reports"."status_daily" FOR VERSION AS OF 7004' in text
    assert '"duffbeer_reports"."spanning_order_cells" FOR VERSION AS OF 7005' in text


def all_api_queries() -> list[reports_sql.BoundQuery]:
    return [
        reports_sql.client_report_query(1001),
        reports_sql.client_orders_query(1001, 0, 51),
        reports_sql.sales_by_product_query("Retail"),
        reports_sql.order_status_query(None),
        reports_sql.channels_query(),
    ]


def test_nothing_ranks_line_versions() -> None:
    texts = [q.sql for q in all_api_queries()] + list(reports_sql.catalog_views("db").values())
    for text in texts:
        assert not re.search(r"\bover\s*\(|row_number|\border_lines\b", text, re.IGNORECASE), text


def test_every_placeholder_is_a_declared_table() -> None:
    for query in all_api_queries():
        named = set(re.findall(r"\{([a-z_]+)\}", query.sql))
        assert named == set(query.tables) <= set(reports_sql.API_TABLES), query.name
        assert "{" not in query.render(PLAIN)
    sneaky = reports_sql.BoundQuery("x", "SELECT 1 FROM {orders_summary}", (), ("client_report",))
    with pytest.raises(KeyError, match="does not declare"):
        sneaky.render(PLAIN)


def test_client_queries_filter_on_the_client_the_tables_are_bucketed_by() -> None:
    query = reports_sql.client_orders_query(1001, 5678, 51)
    assert query.params == (1001, 5678, 51)
    assert "WHERE client_id = ? AND order_id > ?" in query.sql
    assert state.STATE_TABLES["client_orders"].partitioned_by == ("bucket(64, client_id)",)


def test_filters_are_bound_never_formatted() -> None:
    query = reports_sql.order_status_query("Retail", None, None)
    assert "Retail" not in query.sql
    assert query.sql.count("point_of_sale_channel = ?") == 2
    assert query.params == ("Retail", "Retail")
