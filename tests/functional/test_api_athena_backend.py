"""Athena backend against a moto server: the publications read from the state's Iceberg
metadata (tables written with pyiceberg), the exact SQL pinning every table to the
publication's snapshot, the ExecutionParameters and result reuse sent, canned results parsed
into the reports, no query before the first publication, `as_of`, a failed query and a
query past its deadline."""
# ruff: noqa: E501  (canned result rows read best one per line)

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import boto3
import pytest
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager
from pyiceberg.catalog import load_catalog

from duffbeer import state
from duffbeer.errors import ClientNotFoundError, QueryError, QueryTimeoutError
from lambdas.api import handler as api_handler
from lambdas.api.backends.athena import AthenaBackend, Backoff
from lambdas.api.params import OrdersPage, ReportFilters
from lambdas.api.queries import ReportService
from tests.unit.test_api_support import V1_ROWS, V2_ROWS, api_event, body, write_iceberg_state

pytestmark = pytest.mark.functional

REGION = "us-east-1"
WORKGROUP = "duffbeer-orders"
DATABASE = "duffbeer_reports"
BUCKET = "duffbeer-processed-orders"

EXPECTED_STATUS_SQL = """SELECT status, all_statuses,
       sum(orders) AS orders,
       sum(lines) AS lines,
       sum(total_sales) AS total_sales
FROM (
    SELECT status, all_statuses, orders, lines, total_sales
    FROM "duffbeer_reports"."status_daily" FOR VERSION AS OF {status_daily}
    WHERE point_of_sale_channel = ? AND order_date >= CAST(? AS DATE) AND order_date <= CAST(? AS DATE)
    UNION ALL
    SELECT status,
           CASE WHEN status IS NULL THEN 1 ELSE 0 END AS all_statuses,
           count(DISTINCT order_id) - count(*) AS orders,
           CAST(NULL AS BIGINT) AS lines,
           CAST(NULL AS DECIMAL(38, 2)) AS total_sales
    FROM "duffbeer_reports"."spanning_order_cells" FOR VERSION AS OF {spanning_order_cells}
    WHERE point_of_sale_channel = ? AND order_date >= CAST(? AS DATE) AND order_date <= CAST(? AS DATE)
    GROUP BY status
) cells
GROUP BY status, all_statuses"""

EXPECTED_CLIENT_REPORT_SQL = """SELECT status, point_of_sale_channel, all_statuses, all_channels, client_name,
       orders, lines, units, total_sales
FROM "duffbeer_reports"."client_report" FOR VERSION AS OF {client_report}
WHERE client_id = ?"""

EXPECTED_CLIENT_ORDERS_SQL = """SELECT order_id, order_date, point_of_sale_channel, lines, units, total_sales,
       created_lines, delivered_lines, broken_lines
FROM "duffbeer_reports"."client_orders" FOR VERSION AS OF {client_orders}
WHERE client_id = ? AND order_id > ?
ORDER BY order_id
LIMIT ?"""

REUSE_A_WEEK = {"ResultReuseByAgeConfiguration": {"Enabled": True, "MaxAgeInMinutes": 10080}}


def column(name: str, kind: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Label": name,
        "Type": kind,
        "Nullable": "UNKNOWN",
        "CaseSensitive": False,
    }


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
def aws(moto_server: str) -> Iterator[tuple[Any, Any, list[dict[str, Any]]]]:
    """Athena and S3 clients on the moto server, and every StartQueryExecution request as
    botocore sent it (moto does not echo the result reuse configuration)."""
    athena = boto3.client("athena", endpoint_url=moto_server, region_name=REGION)
    athena.create_work_group(
        Name=WORKGROUP,
        Configuration={"ResultConfiguration": {"OutputLocation": "s3://results/athena/"}},
    )
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    sent: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    athena.meta.events.register("provide-client-params.athena.StartQueryExecution", keep)
    yield athena, s3, sent


def publish(endpoint: str, *publications: Any) -> list[state.Publication]:
    """The state's tables and publications as real Iceberg tables; the publications as an
    outside reader (pyiceberg) sees them."""
    write_iceberg_state(endpoint, DATABASE, list(publications))
    catalog = load_catalog(
        "outside",
        **{
            "type": "glue",
            "glue.endpoint": endpoint,
            "glue.region": REGION,
            "s3.endpoint": endpoint,
            "s3.region": REGION,
        },
    )
    table = catalog.load_table(f"{DATABASE}.{state.PUBLICATIONS_TABLE}")
    return state.publications(
        state.SnapshotInfo(s.snapshot_id, s.timestamp_ms, dict(s.summary.additional_properties))
        for s in table.metadata.snapshots
        if s.summary is not None
    )


def backend_for(endpoint: str, aws: tuple[Any, Any, Any], **kwargs: Any) -> AthenaBackend:
    athena, s3, _ = aws
    return AthenaBackend(
        database=DATABASE,
        workgroup=WORKGROUP,
        bucket=BUCKET,
        output_location=f"s3://{BUCKET}/athena-results/",
        timeout_s=kwargs.pop("timeout_s", 5.0),
        pointer_cache_s=kwargs.pop("pointer_cache_s", 5.0),
        result_reuse_minutes=kwargs.pop("result_reuse_minutes", 10080),
        client=athena,
        s3_client=s3,
        glue_client=boto3.client("glue", endpoint_url=endpoint, region_name=REGION),
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


RESULT_KEY = re.compile(r"\n/\* result key [0-9a-f]{32} \*/$")


def _text(query: str) -> str:
    """The query text without the trailing result key (checked here to be there)."""
    assert RESULT_KEY.search(query), query
    return RESULT_KEY.sub("", query)


def test_status_report_pins_every_table_to_the_publication_and_binds_literals(
    moto_server: str, aws: Any
) -> None:
    # Given one publication, and Athena answering with two statuses and the overall
    # distinct orders
    athena, _, sent = aws
    [published] = publish(moto_server, V1_ROWS)
    queue_results(
        STATUS_COLUMNS,
        [
            ("created", "0", "2", "2", "120.00"),
            ("delivered", "0", "1", "1", "15.005"),
            (None, "1", "2", "3", "135.00"),
        ],
    )
    service = ReportService(backend_for(moto_server, aws))
    # When the filtered status report is asked for
    report = service.order_status_report(
        ReportFilters(channel="Retail", date_from=date(2026, 1, 1), date_to=date(2026, 1, 31))
    )
    # Then one query ran over the publication's snapshots, the filter bound once per branch
    [execution] = executions(athena)
    assert _text(execution["Query"]) == EXPECTED_STATUS_SQL.format(**published.snapshots)
    assert execution["ExecutionParameters"] == ["'Retail'", "'2026-01-01'", "'2026-01-31'"] * 2
    assert execution["WorkGroup"] == WORKGROUP
    assert execution["QueryExecutionContext"] == {"Database": DATABASE}
    # And it asked for result reuse, with the workgroup's own result location
    [request] = sent
    assert request["ResultReuseConfiguration"] == REUSE_A_WEEK
    assert "ResultConfiguration" not in request
    # And the text results are typed and shaped (money rounded half up to cents)
    assert report == {
        "filters": {"channel": "Retail", "date_from": "2026-01-01", "date_to": "2026-01-31"},
        "total_orders": 2,
        "statuses": [
            {"status": "created", "orders": 2, "lines": 2, "sales": 120.0, "share_of_orders": 1.0},
            {
                "status": "delivered",
                "orders": 1,
                "lines": 1,
                "sales": 15.01,
                "share_of_orders": 0.5,
            },
            {"status": "broken", "orders": 0, "lines": 0, "sales": 0.0, "share_of_orders": 0.0},
        ],
    }


def test_unfiltered_report_sends_no_parameters(moto_server: str, aws: Any) -> None:
    # Given an empty answer
    athena, _, _ = aws
    publish(moto_server, V1_ROWS)
    queue_results(STATUS_COLUMNS, [(None, "1", "0", None, None)])
    # When the status report is asked for without filters
    report = ReportService(backend_for(moto_server, aws)).order_status_report(ReportFilters())
    # Then the query has no WHERE clause and no ExecutionParameters
    [execution] = executions(athena)
    assert "WHERE" not in execution["Query"]
    assert execution.get("ExecutionParameters") is None
    assert report["total_orders"] == 0


def test_client_report_reads_one_client(moto_server: str, aws: Any) -> None:
    # Given canned answers for the client's figures and one page of its orders
    athena, _, _ = aws
    [published] = publish(moto_server, V1_ROWS)
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
    report = ReportService(backend_for(moto_server, aws)).client_report(1001, OrdersPage(limit=2))
    # Then both queries read client 1001 (and the page) at the publication's snapshots
    sent = {_text(e["Query"]): e["ExecutionParameters"] for e in executions(athena)}
    assert sent == {
        EXPECTED_CLIENT_REPORT_SQL.format(**published.snapshots): ["1001"],
        EXPECTED_CLIENT_ORDERS_SQL.format(**published.snapshots): ["1001", "0", "3"],
    }
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


def test_reuse_never_answers_one_client_with_another_clients_result(
    moto_server: str, aws: Any
) -> None:
    # Given two clients' reports asked for on the same publication, and one of them again
    athena, _, _ = aws
    publish(moto_server, V1_ROWS)
    service = ReportService(backend_for(moto_server, aws))
    for client in (1001, 1002, 1001):
        with contextlib.suppress(ClientNotFoundError):
            service.client_report(client)
    # Then the query texts (what Athena's reuse matches on) differ between the clients and
    # are the same for the same client; no text holds a parameter value
    texts = [e["Query"] for e in executions(athena)]
    assert texts[0] != texts[1] and texts[0] == texts[2]
    assert all("1001" not in text and "1002" not in text for text in texts)


def test_no_publication_answers_empty_without_querying(moto_server: str, aws: Any) -> None:
    # Given no state tables yet
    athena, _, _ = aws
    backend = backend_for(moto_server, aws)
    app = api_handler.create_app(ReportService(backend))
    # When every route is asked for
    client = app.resolve(api_event("/orders/1001"), None)
    products = app.resolve(api_event("/sales-by-product"), None)
    statuses = app.resolve(api_event("/order-status-report"), None)
    # Then the client is unknown, the reports are empty, and Athena ran nothing
    assert client["statusCode"] == 404
    assert body(products)["products"] == []
    assert body(statuses)["total_orders"] == 0
    assert [s["orders"] for s in body(statuses)["statuses"]] == [0, 0, 0]
    assert executions(athena) == []
    assert backend.status()["publication"] is None


def test_the_publications_are_cached_then_followed_to_the_next_one(
    moto_server: str, aws: Any
) -> None:
    # Given publication 1, a cache of 5 s and a clock the test moves
    athena, _, _ = aws
    [first] = publish(moto_server, V1_ROWS)
    now = [100.0]
    backend = backend_for(moto_server, aws, clock=lambda: now[0])
    service = ReportService(backend)
    for _ in range(3):
        queue_results(STATUS_COLUMNS, [])
    # When a report is asked for, publication 2 lands, and it is asked for again before and
    # after the cache expires
    service.order_status_report(ReportFilters())
    second = publish(moto_server, V2_ROWS)[-1]
    now[0] += 4.9
    service.order_status_report(ReportFilters())
    now[0] += 0.2
    service.order_status_report(ReportFilters())
    # Then two queries read publication 1's snapshot of status_daily and the last one 2's
    pinned = [
        re.search(r'"status_daily" FOR VERSION AS OF (\d+)', e["Query"]).group(1)  # type: ignore[union-attr]
        for e in sorted(executions(athena), key=lambda e: e["Status"]["SubmissionDateTime"])
    ]
    status_daily = state.STATUS_DAILY_TABLE
    assert pinned == [str(s.snapshots[status_daily]) for s in (first, first, second)]
    assert first.snapshots[status_daily] != second.snapshots[status_daily]
    assert backend.status()["publication"] == 2


def test_as_of_reads_the_publication_current_then(moto_server: str, aws: Any) -> None:
    # Given publications 1 and 2
    athena, _, _ = aws
    first, second = publish(moto_server, V1_ROWS, V2_ROWS)
    queue_results(STATUS_COLUMNS, [])
    backend = backend_for(moto_server, aws)
    # When the report is asked for as of publication 1's instant
    ReportService(backend).order_status_report(ReportFilters(as_of=first.published_at))
    # Then the query reads publication 1's snapshots
    [execution] = executions(athena)
    assert f"FOR VERSION AS OF {first.snapshots[state.STATUS_DAILY_TABLE]}" in execution["Query"]
    # And an instant before the first publication is a 400 that runs no query
    app = api_handler.create_app(ReportService(backend))
    before = (first.published_at - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = app.resolve(api_event("/order-status-report", query={"as_of": [before]}), None)
    assert response["statusCode"] == 400
    assert "before the first publication" in body(response)["message"]
    assert len(executions(athena)) == 1
    assert second.seq == 2


def test_without_result_reuse_the_fallback_result_location_is_sent(
    moto_server: str, aws: Any
) -> None:
    _, _, sent = aws
    publish(moto_server, V1_ROWS)
    queue_results(STATUS_COLUMNS, [])
    backend = backend_for(moto_server, aws, result_reuse_minutes=0)
    ReportService(backend).order_status_report(ReportFilters())
    [request] = sent
    assert "ResultReuseConfiguration" not in request
    assert request["ResultConfiguration"] == {"OutputLocation": f"s3://{BUCKET}/athena-results/"}


def test_unreadable_publications_metadata_is_a_502(moto_server: str, aws: Any) -> None:
    # Given a publications table whose metadata file is not JSON
    athena, s3, _ = aws
    s3.put_object(Bucket=BUCKET, Key="warehouse/p/metadata/00001.metadata.json", Body=b"{oops")
    boto3.client("glue", endpoint_url=moto_server, region_name=REGION).create_database(
        DatabaseInput={"Name": DATABASE}
    )
    boto3.client("glue", endpoint_url=moto_server, region_name=REGION).create_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": state.PUBLICATIONS_TABLE,
            "Parameters": {
                "table_type": "ICEBERG",
                "metadata_location": f"s3://{BUCKET}/warehouse/p/metadata/00001.metadata.json",
            },
        },
    )
    backend = backend_for(moto_server, aws)
    # When a report is asked for, directly and through the API
    with pytest.raises(QueryError, match="is not Iceberg table metadata"):
        ReportService(backend).order_status_report(ReportFilters())
    response = api_handler.create_app(ReportService(backend_for(moto_server, aws))).resolve(
        api_event("/order-status-report"), None
    )
    # Then it fails as a query failure, and no query ran
    assert response["statusCode"] == 502
    assert executions(athena) == []


@pytest.fixture
def queries_stay_queued() -> Iterator[None]:
    state_manager.set_transition(
        model_name="athena::execution", transition={"progression": "manual", "times": 10**9}
    )
    try:
        yield
    finally:
        state_manager.unset_transition("athena::execution")


def test_failed_query_is_a_query_error_and_a_502(
    moto_server: str, aws: Any, queries_stay_queued: None
) -> None:
    # Given Athena reports the query FAILED at the first poll
    publish(moto_server, V1_ROWS)

    def fail_running_queries(_: float) -> None:
        for execution in athena_backends[DEFAULT_ACCOUNT_ID][REGION].executions.values():
            execution.status = "FAILED"

    backend = backend_for(moto_server, aws, sleep=fail_running_queries)
    # When the report is asked for directly and through the API
    with pytest.raises(QueryError, match="ended FAILED"):
        ReportService(backend).sales_by_product(ReportFilters())
    app = api_handler.create_app(ReportService(backend))
    response = app.resolve(api_event("/sales-by-product"), None)
    # Then the API answers 502 with a message and no detail of the query
    assert response["statusCode"] == 502
    assert body(response)["message"] == "the report query failed"


def test_query_past_its_deadline_is_cancelled(
    moto_server: str, aws: Any, queries_stay_queued: None
) -> None:
    # Given a query that never leaves QUEUED and a clock moved only by the backoff sleeps
    athena, _, _ = aws
    publish(moto_server, V1_ROWS)
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 3))
        now[0] += seconds

    backend = backend_for(
        moto_server,
        aws,
        timeout_s=3.0,
        sleep=sleep,
        clock=lambda: now[0],
        backoff=Backoff(0.1, 2.0, 1.0),
    )
    # When the report is asked for
    with pytest.raises(QueryTimeoutError, match="did not finish within 3 s"):
        ReportService(backend).order_status_report(ReportFilters())
    # Then the polls backed off exponentially up to the cap, stopped at the deadline, and the
    # query was cancelled
    assert sleeps == [0.1, 0.2, 0.4, 0.8, 1.0, 0.5]
    [execution] = executions(athena)
    assert execution["Status"]["State"] == "CANCELLED"


def test_client_not_found_when_no_row_is_the_clients(moto_server: str, aws: Any) -> None:
    publish(moto_server, V1_ROWS)
    queue_results(
        [("status", "varchar"), ("all_statuses", "integer"), ("all_channels", "integer")], []
    )
    with pytest.raises(ClientNotFoundError, match="client 7 has no current order lines"):
        ReportService(backend_for(moto_server, aws)).client_report(7)
