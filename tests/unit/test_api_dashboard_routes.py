"""The routes the reports page adds: daily sales, top clients, the batch history and the page
itself, through the handler on proxy events over a hand-computed state and bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from deploy.stack import DASHBOARD_ASSETS
from duffbeer import history, naming
from duffbeer.errors import QueryError
from lambdas.api import dashboard
from lambdas.api import handler as api_handler
from lambdas.api.batches import BatchHistory, decode_cursor, encode_cursor
from lambdas.api.queries import ReportService
from tests.unit.test_api_handler import FakeLambdaContext
from tests.unit.test_api_support import (
    SPANNING_ROWS,
    V1_ROWS,
    V2_ROWS,
    PublishedStates,
    api_event,
    body,
    moto_endpoint,
    s3_client,
    spanning_states,
)

pytestmark = pytest.mark.functional

__all__ = ["moto_endpoint"]

BUCKET = "dashboard-orders"


def _run_manifest(batch: str, run: str, status: str, **extra: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "manifest_version": 1,
        "batch_id": batch,
        "run_id": run,
        "status": status,
        "error": None,
        "source": {
            "path": f"s3://in/{batch}.csv",
            "bucket": "in",
            "key": f"{batch}.csv",
            "size": 10,
            "event_time": "2026-01-01T10:00:00+00:00",
        },
        "started_at": "2026-01-01T10:00:01+00:00",
        "finished_at": "2026-01-01T10:00:30+00:00",
        "rows_read": 10,
        "rows_valid": 8,
        "rows_rejected": 2,
        "rejects_by_reason": {"bad_price": 1, "bad_status": 1},
        "total_sales": "123.455",
        "published": None,
    }
    manifest.update(extra)
    return manifest


def _record(s3: Any, batch: str, run: str, event_time: str, outcome: str) -> None:
    """The run's entry in the run index, as PublishBatch or QuarantineInput writes it."""
    at = history.run_time(event_time)
    history.record(s3, BUCKET, batch_id=batch, run_id=run, at=at, outcome=outcome)


@pytest.fixture(scope="module")
def history_bucket(moto_endpoint: str) -> str:
    """Four recorded runs: a published run and a run superseded by it (one upload, run
    twice), a run that failed in the transform (manifest + quarantine report), a validation
    failure (report only); a recorded run whose records are gone; stray keys that are no
    record."""
    s3 = s3_client(moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)

    def put(key: str, document: Any) -> None:
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(document).encode())

    put(
        naming.run_manifest_key("orders-a", "run-old"),
        _run_manifest("orders-a", "run-old", "SUCCEEDED"),
    )
    _record(s3, "orders-a", "run-old", "2026-01-01T10:00:00+00:00", "superseded")
    published = _run_manifest(
        "orders-a", "run-new", "SUCCEEDED", rows_read=5, rows_rejected=0, rejects_by_reason={}
    )
    put(naming.run_manifest_key("orders-a", "run-new"), published)
    put(naming.manifest_key("orders-a"), {**published, "published": {"run_id": "run-new"}})
    _record(s3, "orders-a", "run-new", "2026-01-01T10:00:00+00:00", "published")
    failed = _run_manifest(
        "orders-b",
        "run-1",
        "FAILED",
        error={"type": "RejectThresholdExceededError", "message": "6 of 10 rows rejected"},
    )
    put(naming.run_manifest_key("orders-b", "run-1"), failed)
    put(
        f"{naming.quarantine_prefix('orders-b', 'run-1')}{naming.ERROR_REPORT_FILE}",
        {
            "reason": "RejectThresholdExceededError",
            "error": "States.TaskFailed",
            "message": "6 of 10 rows rejected",
            "source": {
                "bucket": "in",
                "key": "orders-b.csv",
                "uri": "s3://in/orders-b.csv",
                "event_time": "2026-01-02T08:00:00Z",
            },
            "quarantined_at": "2026-01-02T08:00:40+00:00",
        },
    )
    _record(s3, "orders-b", "run-1", "2026-01-02T08:00:00Z", "quarantined")
    put(
        f"{naming.quarantine_prefix('orders-c', 'run-9')}{naming.ERROR_REPORT_FILE}",
        {
            "reason": "MissingColumnsError",
            "error": "MissingColumnsError",
            "message": "missing columns: <script>alert('x')</script>",
            "source": {
                "bucket": "in",
                "key": 'bad "quoted".csv',
                "uri": 's3://in/bad "quoted".csv',
                "event_time": "2026-01-03T08:00:00Z",
            },
            "quarantined_at": "2026-01-03T08:00:05+00:00",
        },
    )
    _record(s3, "orders-c", "run-9", "2026-01-03T08:00:00Z", "quarantined")
    # Recorded, but its report has expired since: the history leaves it out.
    _record(s3, "orders-d", "run-gone", "2025-12-01T08:00:00Z", "quarantined")
    s3.put_object(Bucket=BUCKET, Key="quarantine/orders-c/run-9/bad.csv", Body=b"x")
    s3.put_object(
        Bucket=BUCKET, Key="runs/orders-a/run-new/order_lines/part-0.parquet", Body=b"PAR1"
    )
    # A run manifest nobody recorded (its execution has not reached PublishBatch yet).
    put(
        naming.run_manifest_key("orders-e", "run-1"),
        _run_manifest("orders-e", "run-1", "SUCCEEDED"),
    )
    return BUCKET


@pytest.fixture(scope="module")
def call(moto_endpoint: str, history_bucket: str) -> Iterator[Any]:
    backend = spanning_states().backend(check_interval_s=60)
    history = BatchHistory(history_bucket, s3_client(moto_endpoint))
    app = api_handler.create_app(ReportService(backend), history)

    def resolve(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = app.resolve(event, FakeLambdaContext())
        return response

    yield resolve


def test_daily_sales_sums_each_day_within_the_filters(call: Any) -> None:
    # Given the spanning state (product_daily: 01-10 15.00; 01-11 6+10+3+8; 01-12 5.00)
    everything = body(call(api_event("/daily-sales")))
    retail = body(
        call(api_event("/daily-sales", query={"channel": ["retail"], "date_from": ["2026-01-11"]}))
    )
    assert everything == {
        "filters": {"channel": None, "date_from": None, "date_to": None},
        "days": [
            {"date": "2026-01-10", "units": 6, "sales": 15.0},
            {"date": "2026-01-11", "units": 11, "sales": 27.0},
            {"date": "2026-01-12", "units": 2, "sales": 5.0},
        ],
    }
    assert retail == {
        "filters": {"channel": "Retail", "date_from": "2026-01-11", "date_to": None},
        "days": [{"date": "2026-01-11", "units": 8, "sales": 21.0}],
    }


def test_daily_sales_refuses_what_the_report_routes_refuse(call: Any) -> None:
    bad = call(api_event("/daily-sales", query={"date_from": ["2026-02-30"]}))
    unknown = call(api_event("/daily-sales", query={"client": ["1"]}))
    assert (bad["statusCode"], unknown["statusCode"]) == (400, 400)
    assert "date_from is not a calendar date" in body(bad)["message"]


def test_top_clients_ranks_by_sales_over_all_channels_or_one(call: Any) -> None:
    top = body(call(api_event("/top-clients")))
    retail = body(call(api_event("/top-clients", query={"channel": ["Retail"], "limit": ["1"]})))
    assert top == {
        "filters": {"channel": None, "date_from": None, "date_to": None, "search": None},
        "matching_clients": 2,
        "clients": [
            {
                "client_id": 2001,
                "client_name": "Barney",
                "orders": 2,
                "lines": 5,
                "units": 12,
                "sales": 32.0,
            },
            {
                "client_id": 2002,
                "client_name": "Lenny",
                "orders": 2,
                "lines": 2,
                "units": 7,
                "sales": 15.0,
            },
        ],
    }
    assert retail["clients"] == [
        {
            "client_id": 2001,
            "client_name": "Barney",
            "orders": 2,
            "lines": 4,
            "units": 9,
            "sales": 26.0,
        }
    ]


# The spanning state's lines, by hand (tests/unit/test_api_support.py): Barney's order 9000
# has lines in (Retail, 01-10) and (B2B, 01-11), 9001 in (Retail, 01-10) and (Retail, 01-11);
# Lenny's 9002 is on 01-11 (Retail), 9003 on 01-12 (Online).
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Both of Barney's orders span the two days: each counts once.
        (
            {"date_from": ["2026-01-10"], "date_to": ["2026-01-11"]},
            [(2001, "Barney", 2, 5, 12, 32.0), (2002, "Lenny", 1, 1, 5, 10.0)],
        ),
        # From 01-11: Barney's lines B, D, E (6 + 3 + 8); Lenny's F and G (10 + 5).
        (
            {"date_from": ["2026-01-11"]},
            [(2001, "Barney", 2, 3, 6, 17.0), (2002, "Lenny", 2, 2, 7, 15.0)],
        ),
        # Retail up to 01-10: Barney's A and C only.
        (
            {"channel": ["retail"], "date_to": ["2026-01-10"]},
            [(2001, "Barney", 2, 2, 6, 15.0)],
        ),
        ({"date_from": ["2026-01-12"], "search": ["len"]}, [(2002, "Lenny", 1, 1, 2, 5.0)]),
        ({"date_from": ["2026-01-13"]}, []),
    ],
)
def test_top_clients_follow_the_date_filters_counting_each_order_once(
    call: Any, query: dict[str, list[str]], expected: list[tuple[Any, ...]]
) -> None:
    found = body(call(api_event("/top-clients", query=query)))
    rows = [
        (c["client_id"], c["client_name"], c["orders"], c["lines"], c["units"], c["sales"])
        for c in found["clients"]
    ]
    assert (rows, found["matching_clients"]) == (expected, len(expected))
    assert found["filters"]["date_from"] == query.get("date_from", [None])[0]


def test_top_clients_counts_every_matching_client_beyond_the_limit(call: Any) -> None:
    found = body(call(api_event("/top-clients", query={"limit": ["1"], "date_to": ["2026-01-11"]})))
    assert ([c["client_id"] for c in found["clients"]], found["matching_clients"]) == ([2001], 2)


def test_top_clients_by_date_on_reports_made_before_the_table_existed() -> None:
    # Given a publication made before client_order_cells was added (an upgraded stack
    # before its first merge)
    states = PublishedStates()
    rows = {k: v for k, v in SPANNING_ROWS.items() if k != "client_order_cells"}
    states.publish(rows, datetime(2026, 1, 5, tzinfo=UTC))
    app = api_handler.create_app(ReportService(states.backend()))

    def get(query: dict[str, list[str]] | None) -> dict[str, Any]:
        event = api_event("/top-clients", query=query)
        response: dict[str, Any] = app.resolve(event, FakeLambdaContext())
        return response

    # Then the top clients over all days still answer, and by date say why they cannot
    assert [c["client_id"] for c in body(get(None))["clients"]] == [2001, 2002]
    by_date = get({"date_from": ["2026-01-11"]})
    assert by_date["statusCode"] == 400
    assert "client_order_cells" in body(by_date)["message"]
    assert "next merged batch builds it" in body(by_date)["message"]
    # And the other reports are unaffected
    assert get(None)["statusCode"] == 200
    status = app.resolve(api_event("/order-status-report"), FakeLambdaContext())
    assert status["statusCode"] == 200


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("len", [2002]),
        ("BARN", [2001]),
        ("2001", [2001]),
        ("%", []),
        ("_", []),
        ("' OR 1=1 --", []),
    ],
)
def test_top_clients_search_matches_names_and_ids_and_binds_the_text(
    call: Any, search: str, expected: list[int]
) -> None:
    found = body(call(api_event("/top-clients", query={"search": [search]})))
    assert [c["client_id"] for c in found["clients"]] == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"search": [""]}, "search must be 1-64 printable characters"),
        ({"search": ["a\x00b"]}, "search must be 1-64 printable characters"),
        ({"search": ["x" * 65]}, "search must be 1-64 printable characters"),
        ({"limit": ["0"]}, "limit must be an integer from 1 to 100"),
        ({"limit": ["101"]}, "limit must be an integer from 1 to 100"),
        (
            {"date_from": ["2026-01-12"], "date_to": ["2026-01-10"]},
            "date_from (2026-01-12) is after date_to (2026-01-10)",
        ),
        ({"date_to": ["2026-02-30"]}, "date_to is not a calendar date"),
    ],
)
def test_top_clients_refuses_malformed_parameters(
    call: Any, query: dict[str, list[str]], message: str
) -> None:
    response = call(api_event("/top-clients", query=query))
    assert response["statusCode"] == 400
    assert message in body(response)["message"]


def test_batches_lists_every_recorded_run_newest_first(call: Any) -> None:
    page = body(call(api_event("/batches")))
    runs = [(r["batch_id"], r["run_id"], r["status"]) for r in page["items"]]
    assert runs == [
        ("orders-c", "run-9", "FAILED"),
        ("orders-b", "run-1", "FAILED"),
        ("orders-a", "run-new", "PUBLISHED"),
        ("orders-a", "run-old", "SUPERSEDED"),
    ]
    assert page["next_cursor"] is None
    validation, transform, published, superseded = page["items"]
    assert validation["error"] == {
        "name": "MissingColumnsError",
        "message": "missing columns: <script>alert('x')</script>",
    }
    assert validation["file"] == 's3://in/bad "quoted".csv'
    assert (validation["rows_read"], validation["rejects_by_reason"]) == (None, {})
    assert transform["error"] == {
        "name": "RejectThresholdExceededError",
        "message": "6 of 10 rows rejected",
    }
    assert (transform["rows_read"], transform["rows_valid"], transform["rows_rejected"]) == (
        10,
        8,
        2,
    )
    assert published["published"] and not superseded["published"]
    assert published["file"] == "s3://in/orders-a.csv"
    assert published["total_sales"] == 123.46
    assert superseded["rejects_by_reason"] == {"bad_price": 1, "bad_status": 1}


def test_batches_pages_follow_each_other_without_gaps(call: Any) -> None:
    first = body(call(api_event("/batches", query={"limit": ["3"]})))
    second = body(
        call(api_event("/batches", query={"limit": ["3"], "cursor": [first["next_cursor"]]}))
    )
    assert [r["run_id"] for r in first["items"]] == ["run-9", "run-1", "run-new"]
    assert [r["run_id"] for r in second["items"]] == ["run-old"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": ["0"]}, "limit must be an integer from 1 to 100"),
        ({"cursor": ["not a cursor"]}, "cursor is not one this API returned"),
        (
            {"cursor": [encode_cursor(naming.run_manifest_key("orders-a", "run-new"))]},
            "cursor is not one this API returned",
        ),
        ({"page": ["2"]}, "unknown query parameter 'page'"),
    ],
)
def test_batches_refuses_malformed_parameters(
    call: Any, query: dict[str, list[str]], message: str
) -> None:
    response = call(api_event("/batches", query=query))
    assert response["statusCode"] == 400
    assert message in body(response)["message"]


def test_each_run_says_since_when_the_reports_include_it(
    moto_endpoint: str, history_bucket: str
) -> None:
    # Given publications that merged the old run of orders-a, then its new run, then
    # another batch (which repeats no run)
    states = PublishedStates()
    first = datetime(2026, 1, 1, 10, 5, 0, 250_000, tzinfo=UTC)
    second = datetime(2026, 1, 2, 9, 0, 0, tzinfo=UTC)
    states.publish(V1_ROWS, first, merged={"orders-a": "run-old"})
    states.publish(V2_ROWS, second, merged={"orders-a": "run-new"})
    states.publish(SPANNING_ROWS, datetime(2026, 1, 3, tzinfo=UTC), merged={"orders-z": "r"})
    history = BatchHistory(history_bucket, s3_client(moto_endpoint))
    app = api_handler.create_app(ReportService(states.backend()), history)
    # When the history is asked for
    page = body(app.resolve(api_event("/batches"), FakeLambdaContext()))
    # Then each merged run has the instant of the publication that first took it in, to
    # the millisecond, and runs never merged have none
    since = {r["run_id"]: r["in_reports_since"] for r in page["items"]}
    assert since == {
        "run-9": None,
        "run-1": None,
        "run-new": "2026-01-02T09:00:00.000Z",
        "run-old": "2026-01-01T10:05:00.250Z",
    }
    # And that instant, as `as_of`, reads the publication that took the run in: the
    # reports as they stood with the first publication only
    only_first = PublishedStates()
    only_first.publish(V1_ROWS, first)
    then = api_handler.create_app(ReportService(only_first.backend()), history)
    for route in ("/order-status-report", "/sales-by-product", "/daily-sales", "/top-clients"):
        as_of = {"as_of": [str(since["run-old"])]}
        answer = body(app.resolve(api_event(route, query=as_of), FakeLambdaContext()))
        expected = body(then.resolve(api_event(route), FakeLambdaContext()))
        assert answer == expected, route
    latest = body(app.resolve(api_event("/order-status-report"), FakeLambdaContext()))
    assert latest != body(then.resolve(api_event("/order-status-report"), FakeLambdaContext()))


class _NoCatalogBackend:
    """A backend whose catalog cannot be read."""

    name = "no-catalog"

    def fetch(self, queries: Any, as_of: Any = None) -> list[list[Any]]:
        raise QueryError("the catalog is unreachable")

    def status(self) -> dict[str, Any]:
        return {"backend": self.name}

    def published(self) -> list[Any]:
        raise QueryError("the catalog is unreachable")


def test_the_history_answers_without_dates_when_the_catalog_cannot_be_read(
    moto_endpoint: str, history_bucket: str
) -> None:
    history = BatchHistory(history_bucket, s3_client(moto_endpoint))
    app = api_handler.create_app(ReportService(_NoCatalogBackend()), history)
    response = app.resolve(api_event("/batches"), FakeLambdaContext())
    assert response["statusCode"] == 200
    items = body(response)["items"]
    assert [r["run_id"] for r in items] == ["run-9", "run-1", "run-new", "run-old"]
    assert all(r["in_reports_since"] is None for r in items)


def test_batch_cursor_round_trips() -> None:
    key = history.entry_key("orders-b", "run-1", datetime(2026, 1, 2, 8, tzinfo=UTC))
    assert decode_cursor(encode_cursor(key)) == key


def test_dashboard_page_carries_a_policy_that_allows_only_its_own_script(call: Any) -> None:
    response = call(api_event("/dashboard"))
    headers = {k: v[-1] for k, v in response["multiValueHeaders"].items()}
    assert response["statusCode"] == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    page = response["body"]
    assert '<script src="dashboard/app.js" defer></script>' in page
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    assert "http://" not in page.replace('content="', "") and "https://" not in page


def test_dashboard_assets_are_served_with_their_types_and_unknown_ones_are_404(call: Any) -> None:
    script = call(api_event("/dashboard/app.js"))
    styles = call(api_event("/dashboard/app.css"))
    missing = call(api_event("/dashboard/secrets.txt"))
    assert script["multiValueHeaders"]["Content-Type"] == ["text/javascript; charset=utf-8"]
    assert styles["multiValueHeaders"]["Content-Type"] == ["text/css; charset=utf-8"]
    assert "innerHTML" not in script["body"] and "eval(" not in script["body"]
    assert missing["statusCode"] == 404


def test_dashboard_routes_refuse_other_methods_and_parameters(call: Any) -> None:
    post = call(api_event("/dashboard", method="POST"))
    query = call(api_event("/dashboard", query={"key": ["secret"]}))
    assert post["statusCode"] == 405
    assert query["statusCode"] == 400


def test_asset_types_match_the_deployed_routes() -> None:
    assert set(DASHBOARD_ASSETS) == set(dashboard.ASSET_TYPES)
