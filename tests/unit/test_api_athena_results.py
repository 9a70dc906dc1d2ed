"""Athena result handling without a server: paginated results, typed cells, bound literals."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from duffbeer import reports_sql, state
from lambdas.api.backends.athena import AthenaBackend, literal, parse_value

COLUMNS = [
    {"Name": "product_id", "Type": "integer"},
    {"Name": "product_description", "Type": "varchar"},
    {"Name": "total_sales", "Type": "decimal"},
    {"Name": "share", "Type": "double"},
    {"Name": "order_date", "Type": "date"},
]


def cells(*values: str | None) -> dict[str, Any]:
    return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}


def test_results_are_read_across_pages_and_typed() -> None:
    # Given a finished query whose results come in two pages
    client = boto3.client("athena", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
    stubber.add_response(
        "get_query_execution",
        {"QueryExecution": {"QueryExecutionId": "q-1", "Status": {"State": "SUCCEEDED"}}},
    )
    stubber.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "Rows": [
                    cells(*(c["Name"] for c in COLUMNS)),
                    cells("105", "Duff Special", "96.00", "0.5", "2026-01-12"),
                    cells("103", "Duff Lite, \"Light\"", "44.10", "0.25", "2026-01-10"),
                ],
                "ResultSetMetadata": {"ColumnInfo": COLUMNS},
            },
            "NextToken": "page-2",
        },
        {"QueryExecutionId": "q-1", "MaxResults": 1000},
    )
    stubber.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "Rows": [cells("102", "Duff Classic", None, None, None)],
                "ResultSetMetadata": {"ColumnInfo": COLUMNS},
            }
        },
        {"QueryExecutionId": "q-1", "MaxResults": 1000, "NextToken": "page-2"},
    )
    backend = AthenaBackend(
        database="duffbeer_reports",
        workgroup="wg",
        bucket="processed",
        output_location=None,
        timeout_s=5.0,
        client=client,
        sleep=lambda _: None,
    )
    publication = state.Publication(
        seq=1,
        published_at=datetime(2026, 1, 1, tzinfo=UTC),
        kind=state.KIND_MERGE,
        snapshots={table: 100 + i for i, table in enumerate(state.STATE_TABLES)},
    )
    backend.publications._read = lambda: [publication]
    # When the query is fetched
    with stubber:
        [rows] = backend.fetch([reports_sql.channels_query()])
    # Then the header row is skipped once and every page's rows are typed
    assert rows == [
        {
            "product_id": 105,
            "product_description": "Duff Special",
            "total_sales": Decimal("96.00"),
            "share": 0.5,
            "order_date": "2026-01-12",
        },
        {
            "product_id": 103,
            "product_description": 'Duff Lite, "Light"',
            "total_sales": Decimal("44.10"),
            "share": 0.25,
            "order_date": "2026-01-10",
        },
        {
            "product_id": 102,
            "product_description": "Duff Classic",
            "total_sales": None,
            "share": None,
            "order_date": None,
        },
    ]
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1001, "1001"),
        ("Retail", "'Retail'"),
        ("O'Reilly's", "'O''Reilly''s'"),
        (date(2026, 1, 31), "'2026-01-31'"),
    ],
)
def test_parameters_are_bound_as_sql_literals(value: int | str | date, expected: str) -> None:
    assert literal(value) == expected


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("42", "bigint", 42),
        ("7", "integer", 7),
        ("12.30", "decimal", Decimal("12.30")),
        ("0.25", "double", 0.25),
        ("true", "boolean", True),
        ("Retail", "varchar", "Retail"),
        (None, "bigint", None),
    ],
)
def test_result_cells_are_typed_by_column(text: str | None, kind: str, expected: Any) -> None:
    assert parse_value(text, kind) == expected
