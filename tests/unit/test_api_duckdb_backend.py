"""DuckDB backend over hand-written published Parquet in a moto S3 server: current state,
unpublished runs invisible, snapshot refresh when a manifest changes."""
# ruff: noqa: E501  (the hand-written rows read best one line each)

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from duffbeer.errors import ClientNotFoundError
from lambdas.api.backends.duckdb_backend import DuckDBBackend
from lambdas.api.params import OrdersPage, ReportFilters, encode_cursor
from lambdas.api.queries import ReportService
from tests.unit.test_api_support import (
    BUCKET,
    Line,
    filesystem,
    moto_endpoint,
    publish,
    s3_client,
    write_reference_dataset,
    write_run,
)

pytestmark = pytest.mark.functional

__all__ = ["moto_endpoint"]  # the fixture, re-exported for pytest


def backend_for(endpoint: str, bucket: str = BUCKET) -> DuckDBBackend:
    return DuckDBBackend(
        bucket=bucket,
        check_interval_s=0,
        s3_client=s3_client(endpoint),
        filesystem=filesystem(endpoint),
        background=False,
    )


@pytest.fixture(scope="module")
def service(moto_endpoint: str) -> Iterator[ReportService]:
    write_reference_dataset(moto_endpoint)
    yield ReportService(backend_for(moto_endpoint))


def test_client_report_uses_the_latest_batch_and_ignores_unpublished_runs(
    service: ReportService,
) -> None:
    # Given batch B (later) marks line (5678, 102) delivered, and B's old run says broken
    # When client 1001's report is asked for with its orders
    report = service.client_report(1001, OrdersPage(limit=10))
    # Then each order counts once, B's values win and the old run is invisible
    assert report == {
        "client_id": 1001,
        "client_name": "Moe's Tavern",
        "totals": {"orders": 2, "lines": 3, "units": 22, "sales": 49.0},
        "by_status": [
            {"status": "created", "orders": 1, "lines": 1, "units": 12, "sales": 24.0},
            {"status": "delivered", "orders": 2, "lines": 2, "units": 10, "sales": 25.0},
        ],
        "by_channel": [
            {"channel": "Online", "orders": 1, "lines": 1, "units": 4, "sales": 10.0},
            {"channel": "Retail", "orders": 1, "lines": 2, "units": 18, "sales": 39.0},
        ],
        "orders": {
            "items": [
                {
                    "order_id": 5678,
                    "order_date": "2026-01-10",
                    "channel": "Retail",
                    "lines": 2,
                    "units": 18,
                    "sales": 39.0,
                    "lines_by_status": {"created": 1, "delivered": 1, "broken": 0},
                },
                {
                    "order_id": 5690,
                    "order_date": "2026-01-12",
                    "channel": "Online",
                    "lines": 1,
                    "units": 4,
                    "sales": 10.0,
                    "lines_by_status": {"created": 0, "delivered": 1, "broken": 0},
                },
            ],
            "next_cursor": None,
        },
    }


def test_orders_are_paged_with_a_cursor(service: ReportService) -> None:
    # Given client 1001 has orders 5678 and 5690
    # When pages of one order are walked
    first = service.client_report(1001, OrdersPage(limit=1))["orders"]
    second = service.client_report(1001, OrdersPage(limit=1, after_order_id=5678))["orders"]
    # Then each page holds the next order and the last page has no cursor
    assert [o["order_id"] for o in first["items"]] == [5678]
    assert first["next_cursor"] == encode_cursor(5678)
    assert [o["order_id"] for o in second["items"]] == [5690]
    assert second["next_cursor"] is None


def test_clients_seen_only_in_unpublished_runs_do_not_exist(service: ReportService) -> None:
    # Given client 1005 is only in batch C (never published), 1006 only in B's old run
    # When / Then
    for client_id in (1005, 1006):
        with pytest.raises(ClientNotFoundError, match=f"client {client_id} "):
            service.client_report(client_id)


def test_sales_by_product_sorted_by_sales(service: ReportService) -> None:
    # When the whole history is reported
    report = service.sales_by_product(ReportFilters())
    # Then every product appears once with its per-channel figures, by sales descending
    assert report == {
        "filters": {"channel": None, "date_from": None, "date_to": None},
        "products": [
            {
                "product_id": 105, "product_description": "Duff Special",
                "orders": 1, "units": 24, "sales": 96.0, "volume_l": 24.0,
                "by_channel": [
                    {"channel": "Retail", "orders": 1, "units": 24, "sales": 96.0, "volume_l": 24.0}
                ],
            },
            {
                "product_id": 103, "product_description": "Duff Lite",
                "orders": 2, "units": 22, "sales": 44.0, "volume_l": 11.0,
                "by_channel": [
                    {"channel": "Retail", "orders": 1, "units": 12, "sales": 24.0, "volume_l": 6.0},
                    {"channel": "B2B", "orders": 1, "units": 10, "sales": 20.0, "volume_l": 5.0},
                ],
            },
            {
                "product_id": 102, "product_description": "Duff Classic",
                "orders": 2, "units": 10, "sales": 25.0, "volume_l": 3.3,
                "by_channel": [
                    {"channel": "Retail", "orders": 1, "units": 6, "sales": 15.0, "volume_l": 1.98},
                    {"channel": "Online", "orders": 1, "units": 4, "sales": 10.0, "volume_l": 1.32},
                ],
            },
            {
                "product_id": 104, "product_description": "Duff Dry",
                "orders": 1, "units": 8, "sales": 24.0, "volume_l": 2.0,
                "by_channel": [
                    {"channel": "Online", "orders": 1, "units": 8, "sales": 24.0, "volume_l": 2.0}
                ],
            },
        ],
    }


def test_sales_by_product_filters_by_channel_and_dates(service: ReportService) -> None:
    # When filtered to Retail, then to 2026-01-11 alone
    retail = service.sales_by_product(ReportFilters(channel="Retail"))
    one_day = service.sales_by_product(
        ReportFilters(date_from=date(2026, 1, 11), date_to=date(2026, 1, 11))
    )
    # Then only the matching lines count
    assert [(p["product_id"], p["orders"], p["units"], p["sales"]) for p in retail["products"]] == [
        (105, 1, 24, 96.0),
        (103, 1, 12, 24.0),
        (102, 1, 6, 15.0),
    ]
    assert [(p["product_id"], p["sales"]) for p in one_day["products"]] == [
        (104, 24.0),
        (103, 20.0),
    ]


def test_order_status_report_counts_each_order_once_per_status(service: ReportService) -> None:
    # When the status report is asked for, over everything and over Retail
    everything = service.order_status_report(ReportFilters())
    retail = service.order_status_report(ReportFilters(channel="Retail"))
    # Then order 5678 counts under created and delivered; shares are of all distinct orders
    assert everything == {
        "filters": {"channel": None, "date_from": None, "date_to": None},
        "total_orders": 5,
        "statuses": [
            {"status": "created", "orders": 2, "lines": 2, "sales": 120.0, "share_of_orders": 0.4},
            {"status": "delivered", "orders": 3, "lines": 3, "sales": 45.0, "share_of_orders": 0.6},
            {"status": "broken", "orders": 1, "lines": 1, "sales": 24.0, "share_of_orders": 0.2},
        ],
    }
    assert retail["total_orders"] == 2
    assert retail["statuses"] == [
        {"status": "created", "orders": 2, "lines": 2, "sales": 120.0, "share_of_orders": 1.0},
        {"status": "delivered", "orders": 1, "lines": 1, "sales": 15.0, "share_of_orders": 0.5},
        {"status": "broken", "orders": 0, "lines": 0, "sales": 0.0, "share_of_orders": 0.0},
    ]


def test_health_reports_the_snapshot(service: ReportService) -> None:
    # When the backend's status is read after the first queries
    status = service.backend.status()
    # Then it names the two published batches and the six current lines
    assert status["snapshot"]["batches"] == 2
    assert status["snapshot"]["current_lines"] == 6
    assert status["snapshot"]["orders_within_partitions"] is True
    assert status["last_refresh_error"] is None


def test_orders_spanning_partitions_are_counted_once(moto_endpoint: str) -> None:
    # Given order 9000 has one line in Retail on the 10th and one in B2B on the 11th
    bucket = "spanning-orders"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    lines = [
        Line(2001, "Barney", 9000, 102, "Duff Classic", "2.50", 2, "0.330", "Retail", "created", "2026-01-10"),
        Line(2001, "Barney", 9000, 103, "Duff Lite", "2.00", 3, "0.500", "B2B", "created", "2026-01-11"),
    ]
    parts = write_run(moto_endpoint, bucket, "orders-s", "run-s1", "2026-01-05T00:00:00Z", lines)
    publish(moto_endpoint, bucket, "orders-s", "run-s1", "2026-01-05T00:00:00Z", parts)
    service = ReportService(backend_for(moto_endpoint, bucket))
    # When the status report is asked for
    report = service.order_status_report(ReportFilters())
    # Then the order counts once although its lines are in two partitions
    assert report["total_orders"] == 1
    assert report["statuses"][0] == {
        "status": "created", "orders": 1, "lines": 2, "sales": 11.0, "share_of_orders": 1.0
    }
    assert service.backend.status()["snapshot"]["orders_within_partitions"] is False


def test_snapshot_follows_a_newly_published_batch(moto_endpoint: str) -> None:
    # Given a bucket with one published batch, already read once
    bucket = "refreshing-orders"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    first = [Line(3001, "Otto", 9100, 102, "Duff Classic", "2.50", 1, "0.330", "Online", "created", "2026-02-01")]
    parts = write_run(moto_endpoint, bucket, "orders-r", "run-r1", "2026-02-01T00:00:00Z", first)
    publish(moto_endpoint, bucket, "orders-r", "run-r1", "2026-02-01T00:00:00Z", parts)
    backend = backend_for(moto_endpoint, bucket)
    service = ReportService(backend)
    assert service.order_status_report(ReportFilters())["total_orders"] == 1
    # When a second batch is published and the manifests are checked again
    second = [Line(3002, "Sherri", 9200, 103, "Duff Lite", "2.00", 1, "0.500", "Online", "broken", "2026-02-02")]
    parts = write_run(moto_endpoint, bucket, "orders-t", "run-t1", "2026-02-02T00:00:00Z", second)
    publish(moto_endpoint, bucket, "orders-t", "run-t1", "2026-02-02T00:00:00Z", parts)
    rebuilt = backend.refresh()
    unchanged = backend.refresh()
    # Then the snapshot is rebuilt once and the new batch counts
    assert (rebuilt, unchanged) == (True, False)
    assert service.order_status_report(ReportFilters())["total_orders"] == 2


def test_an_empty_bucket_gives_empty_reports(moto_endpoint: str) -> None:
    # Given nothing has been published yet
    bucket = "nothing-published"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    service = ReportService(backend_for(moto_endpoint, bucket))
    # When the reports are asked for
    products = service.sales_by_product(ReportFilters())
    statuses = service.order_status_report(ReportFilters())
    # Then they are empty, with every status at zero
    assert products["products"] == []
    assert statuses["total_orders"] == 0
    assert [(s["status"], s["orders"]) for s in statuses["statuses"]] == [
        ("created", 0), ("delivered", 0), ("broken", 0)
    ]


def test_answers_are_reused_within_a_snapshot(moto_endpoint: str) -> None:
    # Given a backend whose snapshot is built (which answers the unfiltered reports at once)
    write_reference_dataset(moto_endpoint, "cached-orders")
    backend = backend_for(moto_endpoint, "cached-orders")
    service = ReportService(backend)
    backend.refresh()
    counts = [(backend.status()["snapshot"]["cache_hits"], backend.status()["snapshot"]["cache_misses"])]
    # When the unfiltered report, then a date-filtered one twice, are asked for
    unfiltered = service.sales_by_product(ReportFilters())
    counts.append((backend.status()["snapshot"]["cache_hits"], backend.status()["snapshot"]["cache_misses"]))
    day = ReportFilters(date_from=date(2026, 1, 11), date_to=date(2026, 1, 11))
    first = service.sales_by_product(day)
    second = service.sales_by_product(day)
    counts.append((backend.status()["snapshot"]["cache_hits"], backend.status()["snapshot"]["cache_misses"]))
    # Then the warmed answer and the repeated one come from the cache, with the same figures
    hits, misses = counts[0]
    assert counts[1:] == [(hits + 1, misses), (hits + 2, misses + 1)]
    assert first == second
    assert [p["product_id"] for p in unfiltered["products"]] == [105, 103, 102, 104]


def test_a_failed_rebuild_keeps_serving_the_previous_snapshot(moto_endpoint: str) -> None:
    # Given a snapshot of one published batch
    bucket = "broken-later"
    s3 = s3_client(moto_endpoint)
    s3.create_bucket(Bucket=bucket)
    lines = [Line(4001, "Ned", 9300, 102, "Duff Classic", "2.50", 2, "0.330", "Retail", "created", "2026-03-01")]
    parts = write_run(moto_endpoint, bucket, "orders-n", "run-n1", "2026-03-01T00:00:00Z", lines)
    publish(moto_endpoint, bucket, "orders-n", "run-n1", "2026-03-01T00:00:00Z", parts)
    backend = backend_for(moto_endpoint, bucket)
    service = ReportService(backend)
    before = service.client_report(4001)
    # When a second manifest appears that is not valid JSON
    s3.put_object(Bucket=bucket, Key="manifests/orders-x.json", Body=b"{not json")
    after = service.client_report(4001)
    # Then requests keep the previous figures and the failure shows in the status
    assert after == before
    assert after["totals"] == {"orders": 1, "lines": 1, "units": 2, "sales": 5.0}
    error = backend.status()["last_refresh_error"]
    assert error is not None
    assert error.startswith(f"s3://{bucket}/manifests/orders-x.json is not a valid manifest")
