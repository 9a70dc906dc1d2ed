"""Catalog definitions of catalog_batch checked against the contract and the report SQL."""

from __future__ import annotations

import base64
import json
from typing import Any

import duckdb
import pytest

from duffbeer import catalog_tables as tables
from duffbeer import contract, reports_sql, state

# Trino and DuckDB agree on these result types; sum() of an integer is where they differ
# (Trino: bigint, DuckDB: hugeint), so those columns are compared by name only.
_DUCKDB_TYPES = {
    "int": "INTEGER",
    "string": "VARCHAR",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}
_INTEGER_SUMS = {"total_units", "units"}


def _duckdb_type(hive_type: str) -> str:
    return _DUCKDB_TYPES.get(hive_type, hive_type.upper())


DATABASE = "duffbeer_reports"


def _view_sql(table_input: dict[str, Any]) -> str:
    encoded = table_input["ViewOriginalText"].removeprefix("/* Presto View: ").removesuffix(" */")
    return str(json.loads(base64.b64decode(encoded))["originalSql"])


@pytest.fixture(scope="module")
def views() -> dict[str, tuple[dict[str, Any], list[Any]]]:
    """Every Athena view's TableInput, and what DuckDB says its SQL returns over empty state
    tables in a schema named like the database."""
    connection = duckdb.connect()
    connection.execute(f'CREATE SCHEMA "{DATABASE}"')
    for name, table in state.STATE_TABLES.items():
        definition = ", ".join(f"{c} {_duckdb_type(kind)}" for c, kind in table.columns)
        connection.execute(f'CREATE TABLE "{DATABASE}"."{name}" ({definition})')
    result = {}
    for name, table_input in tables.views(DATABASE).items():
        connection.execute(f"CREATE VIEW {name} AS {_view_sql(table_input)}")
        described = connection.execute(f"DESCRIBE {name}").fetchall()
        result[name] = (table_input, [(row[0], row[1]) for row in described])
    return result


def test_every_view_declares_the_columns_its_sql_returns(
    views: dict[str, tuple[dict[str, Any], list[Any]]],
) -> None:
    assert sorted(views) == sorted(reports_sql.VIEW_COLUMNS)
    for name, (table_input, described) in views.items():
        declared = [(c["Name"], c["Type"]) for c in table_input["StorageDescriptor"]["Columns"]]
        assert declared == list(reports_sql.VIEW_COLUMNS[name]), name
        assert [column for column, _ in described] == [column for column, _ in declared], name
        for (column, duck_type), (_, hive_type) in zip(described, declared, strict=True):
            if column not in _INTEGER_SUMS:
                assert duck_type == _duckdb_type(hive_type), f"{name}.{column}"
        # A view reads the tables' current (published) snapshots by name
        assert f'"{DATABASE}".' in _view_sql(table_input), name


def test_orders_summary_is_a_state_table_with_exactly_the_seed_schema() -> None:
    assert state.STATE_TABLES[state.ORDERS_SUMMARY_TABLE].columns == (
        ("client_id", "int"),
        ("client_name", "string"),
        ("total_orders", "int"),
        ("total_sales", "double"),
    )
    assert state.ORDERS_SUMMARY_TABLE == "orders_summary"


def test_presto_view_text_round_trips() -> None:
    text = tables.presto_view_text("SELECT 1 AS one", "duffbeer_reports", (("one", "int"),))
    encoded = text.removeprefix("/* Presto View: ").removesuffix(" */")
    assert json.loads(base64.b64decode(encoded)) == {
        "originalSql": "SELECT 1 AS one",
        "catalog": "awsdatacatalog",
        "schema": "duffbeer_reports",
        "columns": [{"name": "one", "type": "integer"}],
        "owner": "duffbeer-orders",
        "runAsInvoker": False,
        "properties": {},
    }


def test_report_tables_follow_the_contract() -> None:
    base = tables.base_tables("duffbeer-processed-orders")
    client_sales = base["batch_client_sales"]
    assert [(c["Name"], c["Type"]) for c in client_sales["StorageDescriptor"]["Columns"]] == list(
        contract.CLIENT_SALES_COLUMNS
    )
    assert client_sales["PartitionKeys"] == [{"Name": "batch_id", "Type": "string"}]
    rejects = [(c["Name"], c["Type"]) for c in base["rejects"]["StorageDescriptor"]["Columns"]]
    assert rejects == [c for c in contract.REJECT_COLUMNS if c[0] != "batch_id"]


def test_partitions_of_a_published_run() -> None:
    published = {
        "partitions": [
            {
                "point_of_sale_channel": "Retail",
                "order_date": "2026-11-28",
                "location": "runs/b-1/r-1/order_lines/point_of_sale_channel=Retail/"
                "order_date=2026-11-28/",
                "rows": 3,
            }
        ],
        "outputs": {
            "order_lines": "runs/b-1/r-1/order_lines/",
            "reports": {
                "client_sales": "runs/b-1/r-1/reports/client_sales/",
                "product_channel_sales": "runs/b-1/r-1/reports/product_channel_sales/",
                "order_status": "runs/b-1/r-1/reports/order_status/",
            },
            "rejects": "runs/b-1/r-1/rejects/",
        },
    }
    assert tables.batch_partitions(published, batch_id="b-1", bucket="p") == {
        "order_lines": {
            ("Retail", "2026-11-28", "b-1"): "s3://p/runs/b-1/r-1/order_lines/"
            "point_of_sale_channel=Retail/order_date=2026-11-28/"
        },
        "rejects": {("b-1",): "s3://p/runs/b-1/r-1/rejects/"},
        "batch_client_sales": {("b-1",): "s3://p/runs/b-1/r-1/reports/client_sales/"},
        "batch_product_channel_sales": {
            ("b-1",): "s3://p/runs/b-1/r-1/reports/product_channel_sales/"
        },
        "batch_order_status": {("b-1",): "s3://p/runs/b-1/r-1/reports/order_status/"},
    }
