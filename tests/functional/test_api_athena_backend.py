"""Athena backend against moto (decorator mode): the exact SQL and ExecutionParameters sent,
canned results parsed into the reports, a failed query and a query past its deadline."""
# ruff: noqa: E501  (canned result rows read best one per line)

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager

from duffbeer.errors import QueryError, QueryTimeoutError
from lambdas.api import handler as api_handler
from lambdas.api.backends.athena import AthenaBackend, Backoff
from lambdas.api.params import OrdersPage, ReportFilters
from lambdas.api.queries import ReportService
from tests.unit.test_api_support import api_event, body

pytestmark = pytest.mark.functional

REGION = "us-east-1"
WORKGROUP = "duffbeer-orders"
DATABASE = "duffbeer_reports"

EXPECTED_STATUS_SQL = """WITH api_status_orders AS (
SELECT status, point_of_sale_channel, order_date, order_id,
       count(*) AS lines,
       sum(line_total) AS total_sales
FROM order_lines_current
GROUP BY status, point_of_sale_channel, order_date, order_id
)
SELECT status,
       grouping(status) AS all_statuses,
       count(DISTINCT order_id) AS orders,
       sum(lines) AS lines,
       sum(total_sales) AS total_sales
FROM api_status_orders
WHERE point_of_sale_channel = ? AND order_date >= CAST(? AS DATE) AND order_date <= CAST(? AS DATE)
GROUP BY GROUPING SETS ((status), ())"""


def column(name: str, kind: str) -> dict[str, Any]:
    return {"Name": name, "Label": name, "Type": kind, "Nullable": "UNKNOWN", "CaseSensitive": False}


def row(*cells: str | None) -> dict[str, Any]:
    return {"Data": [{} if c is None else {"VarCharValue": c} for c in cells]}


def queue_results(columns: list[tuple[str, str]], rows: list[tuple[str | None, ...]]) -> None:
    """Queue one canned result set; Athena's first row repeats the column names."""
    athena_backends[DEFAULT_ACCOUNT_ID][REGION].query_results_queue.append(
        QueryResults(
            rows=[row(*(n for n, _ in columns)), *(row(*r) for r in rows)],
            column_info=[column(n, t) for n, t in columns],
        )
    )


@pytest.fixture
def athena() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("athena", region_name=REGION)
        client.create_work_group(
            Name=WORKGROUP,
            Configuration={"ResultConfiguration": {"OutputLocation": "s3://results/athena/"}},
        )
        yield client


def backend_for(client: Any, **kwargs: Any) -> AthenaBackend:
    return AthenaBackend(
        database=DATABASE,
        workgroup=WORKGROUP,
        output_location="s3://duffbeer-processed-orders/athena-results/",
        timeout_s=kwargs.pop("timeout_s", 5.0),
        client=client,
        sleep=kwargs.pop("sleep", lambda _: None),
        **kwargs,
    )


def executions(client: Any) -> list[dict[str, Any]]:
    ids = client.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"]
    return [client.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


STATUS_COLUMNS = [
    ("status", "varchar"),
    ("all_statuses", "integer"),
    ("orders", "bigint"),
    ("lines", "bigint"),
    ("total_sales", "decimal"),
]


def test_status_report_sends_the_shared_sql_with_bound_literals(athena: Any) -> None:
    # Given Athena will answer with two statuses and the overall distinct orders
    queue_results(
        STATUS_COLUMNS,
        [("created", "0", "2", "2", "120.00"), ("delivered", "0", "1", "1", "15.005"), (None, "1", "2", "3", "135.00")],
    )
    service = ReportService(backend_for(athena))
    # When the filtered status report is asked for
    report = service.order_status_report(
        ReportFilters(channel="Retail", date_from=date(2026, 1, 1), date_to=date(2026, 1, 31))
    )
    # Then one query ran with the exact SQL, the workgroup, the database and quoted literals
    [execution] = executions(athena)
    assert execution["Query"] == EXPECTED_STATUS_SQL
    assert execution["ExecutionParameters"] == ["'Retail'", "'2026-01-01'", "'2026-01-31'"]
    assert execution["WorkGroup"] == WORKGROUP
    assert execution["QueryExecutionContext"] == {"Database": DATABASE}
    # And the text results are typed and shaped (money rounded half up to cents)
    assert report == {
        "filters": {"channel": "Retail", "date_from": "2026-01-01", "date_to": "2026-01-31"},
        "total_orders": 2,
        "statuses": [
            {"status": "created", "orders": 2, "lines": 2, "sales": 120.0, "share_of_orders": 1.0},
            {"status": "delivered", "orders": 1, "lines": 1, "sales": 15.01, "share_of_orders": 0.5},
            {"status": "broken", "orders": 0, "lines": 0, "sales": 0.0, "share_of_orders": 0.0},
        ],
    }


def test_unfiltered_report_sends_no_parameters(athena: Any) -> None:
    # Given an empty answer
    queue_results(STATUS_COLUMNS, [(None, "1", "0", None, None)])
    # When the status report is asked for without filters
    report = ReportService(backend_for(athena)).order_status_report(ReportFilters())
    # Then the query has no WHERE clause and no ExecutionParameters
    [execution] = executions(athena)
    assert "WHERE" not in execution["Query"]
    assert execution.get("ExecutionParameters") is None
    assert report["total_orders"] == 0


def test_client_report_runs_both_queries_and_parses_the_orders(athena: Any) -> None:
    # Given canned answers for the client's figures and one page of its orders
    queue_results(
        [
            ("status", "varchar"),
            ("point_of_sale_channel", "varchar"),
            ("all_statuses", "integer"),
            ("all_channels", "integer"),
            ("client_name", "varchar"),
            ("orders", "bigint"),
            ("lines", "bigint"),
            ("units", "bigint"),
            ("total_sales", "decimal"),
        ],
        [
            (None, None, "1", "1", "Moe's Tavern", "2", "3", "22", "49.00"),
            ("created", None, "0", "1", "Moe's Tavern", "1", "1", "12", "24.00"),
            (None, "Retail", "1", "0", "Moe's Tavern", "2", "3", "22", "49.00"),
        ],
    )
    queue_results(
        [
            ("order_id", "integer"),
            ("order_date", "date"),
            ("point_of_sale_channel", "varchar"),
            ("lines", "bigint"),
            ("units", "bigint"),
            ("total_sales", "decimal"),
            ("created_lines", "bigint"),
            ("delivered_lines", "bigint"),
            ("broken_lines", "bigint"),
        ],
        [
            ("5678", "2026-01-10", "Retail", "2", "18", "39.00", "1", "1", "0"),
            ("5690", "2026-01-12", "Retail", "1", "4", "10.00", "0", "1", "0"),
            ("5700", "2026-01-12", "Retail", "1", "0", "0.00", "0", "1", "0"),
        ],
    )
    # When the report is asked for with pages of two orders
    report = ReportService(backend_for(athena)).client_report(1001, OrdersPage(limit=2))
    # Then both queries carry the client id (and the page bounds) as literals
    sent = sorted((e["Query"].split("\n")[0], e["ExecutionParameters"]) for e in executions(athena))
    assert sent == [
        ("WITH api_client_orders AS (", ["1001", "0", "3"]),
        ("WITH api_client_report AS (", ["1001"]),
    ]
    # And the third order only signals that another page exists
    assert report["totals"] == {"orders": 2, "lines": 3, "units": 22, "sales": 49.0}
    assert report["by_status"] == [
        {"status": "created", "orders": 1, "lines": 1, "units": 12, "sales": 24.0}
    ]
    assert report["by_channel"] == [
        {"channel": "Retail", "orders": 2, "lines": 3, "units": 22, "sales": 49.0}
    ]
    assert [o["order_id"] for o in report["orders"]["items"]] == [5678, 5690]
    assert report["orders"]["items"][0]["order_date"] == "2026-01-10"
    assert report["orders"]["next_cursor"] is not None


@pytest.fixture
def queries_stay_queued() -> Iterator[None]:
    state_manager.set_transition(
        model_name="athena::execution", transition={"progression": "manual", "times": 10**9}
    )
    try:
        yield
    finally:
        state_manager.unset_transition("athena::execution")


def test_failed_query_is_a_query_error_and_a_502(athena: Any, queries_stay_queued: None) -> None:
    # Given Athena reports the query FAILED at the first poll
    def fail_running_queries(_: float) -> None:
        for execution in athena_backends[DEFAULT_ACCOUNT_ID][REGION].executions.values():
            execution.status = "FAILED"

    backend = backend_for(athena, sleep=fail_running_queries)
    # When the report is asked for directly and through the API
    with pytest.raises(QueryError, match="ended FAILED"):
        ReportService(backend).sales_by_product(ReportFilters())
    app = api_handler.create_app(ReportService(backend))
    response = app.resolve(api_event("/sales-by-product"), None)
    # Then the API answers 502 with a message and no detail of the query
    assert response["statusCode"] == 502
    assert body(response)["message"] == "the report query failed"


def test_query_past_its_deadline_is_cancelled(athena: Any, queries_stay_queued: None) -> None:
    # Given a query that never leaves QUEUED and a clock moved only by the backoff sleeps
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 3))
        now[0] += seconds

    backend = backend_for(
        athena, timeout_s=3.0, sleep=sleep, clock=lambda: now[0], backoff=Backoff(0.1, 2.0, 1.0)
    )
    # When the report is asked for
    with pytest.raises(QueryTimeoutError, match="did not finish within 3 s"):
        ReportService(backend).order_status_report(ReportFilters())
    # Then the polls backed off exponentially up to the cap, stopped at the deadline, and the
    # query was cancelled
    assert sleeps == [0.1, 0.2, 0.4, 0.8, 1.0, 0.5]
    [execution] = executions(athena)
    assert execution["Status"]["State"] == "CANCELLED"
