"""The report SQL over the state tables: the stable views run in DuckDB over hand-written
versions, with the catalog's column names and types; placeholders and parameters."""
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
from duffbeer.reports_sql import ClientBucket
from tests.unit.test_api_support import MALL, MOE, SPANNING_ROWS, V2_ROWS, Rows, arrow_type


def state_database(rows: Mapping[str, Rows]) -> Any:
    """Every state table of one version in DuckDB, typed from the contract."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for name, table in state.STATE_TABLES.items():
        columns = (*table.columns, *table.partition_keys)
        definition = ", ".join(f"{c} {reports_sql.sql_type(k)}" for c, k in columns)
        connection.execute(f"CREATE TABLE {name} ({definition})")
        # client_bucket (the only partition key not in the rows) is not read by the views.
        stored = [(c, k) for c, k in columns if c != "client_bucket"]
        data = pa.table(
            {c: [r[i] for r in rows[name]] for i, (c, _) in enumerate(stored)},
            schema=pa.schema([(c, arrow_type(k)) for c, k in stored]),
        )
        connection.register("rows", data)
        connection.execute(f"INSERT INTO {name} BY NAME SELECT * FROM rows")
        connection.unregister("rows")
    return connection


def create_views(connection: Any, views: Mapping[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    result = {}
    for name, sql in views.items():
        connection.execute(f"CREATE VIEW {name}_view AS {sql}")
        result[name] = connection.execute(f"SELECT * FROM {name}_view ORDER BY ALL").fetchall()
    return result


PLAIN = {name: name for name in state.STATE_TABLES}

_LINE_COLUMNS = [
    ("client_id", "int"), ("client_name", "string"), ("order_id", "int"), ("product_id", "int"),
    ("product_description", "string"), ("product_price", "decimal(12,2)"), ("product_ccf", "int"),
    ("product_volume", "decimal(8,3)"), ("status", "string"), ("line_total", "decimal(18,2)"),
    ("line_volume_l", "decimal(18,3)"), ("batch_id", "string"), ("source_event_time", "timestamp"),
    ("point_of_sale_channel", "string"), ("order_date", "date"),
]
# The views' columns as the Glue catalog declares them for Athena users, in creation order.
CATALOG_VIEW_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "order_lines_current": _LINE_COLUMNS,
    "orders_summary": [("client_id", "int"), ("client_name", "string"), ("total_orders", "int"), ("total_sales", "double")],
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


def test_views_over_a_version_give_the_current_figures() -> None:
    # Given version 2 of the reference state
    connection = state_database(V2_ROWS)
    # When the stable views are defined over its tables
    views = create_views(connection, reports_sql.catalog_views(PLAIN))
    # Then each gives the figures of the current lines, each order counted once
    assert views["orders_summary"] == [
        (1001, MOE, 2, 49.0), (1002, "Kwik-E-Mart", 1, 20.0), (1003, "Krusty Burger", 1, 24.0), (1004, MALL, 1, 96.0)
    ]
    assert views["orders_per_client"] == [
        (1001, MOE, 2, 3, 22, Decimal("49.00")),
        (1004, MALL, 1, 1, 24, Decimal("96.00")),
    ]  # 1002 and 1003 live in partitions the test did not load: version 2 reuses them
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
    assert len(views["order_lines_current"]) == 6


def test_status_view_counts_orders_spanning_cells_once() -> None:
    views = create_views(state_database(SPANNING_ROWS), reports_sql.catalog_views(PLAIN))
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


@pytest.mark.parametrize("empty", [False, True], ids=["over a version", "before any version"])
def test_views_keep_the_catalog_columns_and_types(empty: bool) -> None:
    # Given the views over a version, and the views deploy creates before the first one
    connection = state_database(V2_ROWS)
    views = reports_sql.CATALOG_VIEWS if empty else reports_sql.catalog_views(PLAIN)
    for name, sql in views.items():
        connection.execute(f"CREATE VIEW {name}_view AS {sql}")
        described = [(r[0], r[1]) for r in connection.execute(f"DESCRIBE {name}_view").fetchall()]
        # Then each has the columns and types the catalog declares for it
        declared = CATALOG_VIEW_COLUMNS[name]
        assert described == [(c, reports_sql.sql_type(k)) for c, k in declared], name
        if empty:
            assert connection.execute(f"SELECT count(*) FROM {name}_view").fetchone() == (0,)
    assert list(views) == list(CATALOG_VIEW_COLUMNS)
    assert {n: list(c) for n, c in reports_sql.VIEW_COLUMNS.items()} == CATALOG_VIEW_COLUMNS


def test_views_name_the_tables_they_are_given() -> None:
    references = {name: f'"db_versions"."{state.versioned_table(name, "0000000007-0a0b0c0d")}"' for name in state.STATE_TABLES}
    views = reports_sql.catalog_views(references)
    assert 'FROM "db_versions"."orders_summary_v0000000007_0a0b0c0d"' in views["orders_summary"]
    assert all("{" not in sql for sql in views.values())


def all_api_queries() -> list[reports_sql.BoundQuery]:
    return [
        reports_sql.client_report_query(1001),
        reports_sql.client_orders_query(1001, 0, 51),
        reports_sql.sales_by_product_query("Retail"),
        reports_sql.order_status_query(None),
        reports_sql.channels_query(),
    ]


def test_nothing_ranks_line_versions() -> None:
    texts = [q.sql for q in all_api_queries()] + list(reports_sql.catalog_views(PLAIN).values())
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


def test_client_queries_bind_the_partition_of_the_version() -> None:
    query = reports_sql.client_orders_query(1001, 5678, 51)
    assert query.params == (ClientBucket(1001), 1001, 5678, 51)
    assert query.bind(64) == (41, 1001, 5678, 51)
    assert query.bind(4) == (1, 1001, 5678, 51)


def test_filters_are_bound_never_formatted() -> None:
    query = reports_sql.order_status_query("Retail", None, None)
    assert "Retail" not in query.sql
    assert query.sql.count("point_of_sale_channel = ?") == 2
    assert query.params == ("Retail", "Retail")
