"""DuckDB backend over hand-written state versions in a moto S3 server: the published
version only, partitions reused from an older version, orders spanning cells, the pointer
moving, and one version per request while it moves."""
# ruff: noqa: E501  (the expected reports read best one line each)

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from duffbeer import naming, state
from duffbeer.errors import ClientNotFoundError
from lambdas.api.backends.duckdb_backend import DuckDBBackend
from lambdas.api.params import OrdersPage, ReportFilters, encode_cursor
from lambdas.api.queries import ClientReport, ReportService
from tests.unit.test_api_support import (
    BUCKET,
    V1,
    V2,
    V_SPAN,
    StateStore,
    filesystem,
    moto_endpoint,
    s3_client,
    write_reference_state,
    write_spanning_state,
)

pytestmark = pytest.mark.functional

__all__ = ["moto_endpoint"]  # the fixture, re-exported for pytest

# Client 1001 in version 1 (batch orders-a alone) and version 2 (orders-b delivered one line).
MOE_V1: ClientReport = {
    "client_id": 1001,
    "client_name": "Moe's Tavern",
    "totals": {"orders": 2, "lines": 3, "units": 22, "sales": 49.0},
    "by_status": [
        {"status": "created", "orders": 1, "lines": 2, "units": 18, "sales": 39.0},
        {"status": "delivered", "orders": 1, "lines": 1, "units": 4, "sales": 10.0},
    ],
    "by_channel": [
        {"channel": "Online", "orders": 1, "lines": 1, "units": 4, "sales": 10.0},
        {"channel": "Retail", "orders": 1, "lines": 2, "units": 18, "sales": 39.0},
    ],
    "orders": {
        "items": [
            {"order_id": 5678, "order_date": "2026-01-10", "channel": "Retail", "lines": 2, "units": 18, "sales": 39.0, "lines_by_status": {"created": 2, "delivered": 0, "broken": 0}},
            {"order_id": 5690, "order_date": "2026-01-12", "channel": "Online", "lines": 1, "units": 4, "sales": 10.0, "lines_by_status": {"created": 0, "delivered": 1, "broken": 0}},
        ],
        "next_cursor": None,
    },
}
MOE_V2: ClientReport = {
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
            {"order_id": 5678, "order_date": "2026-01-10", "channel": "Retail", "lines": 2, "units": 18, "sales": 39.0, "lines_by_status": {"created": 1, "delivered": 1, "broken": 0}},
            {"order_id": 5690, "order_date": "2026-01-12", "channel": "Online", "lines": 1, "units": 4, "sales": 10.0, "lines_by_status": {"created": 0, "delivered": 1, "broken": 0}},
        ],
        "next_cursor": None,
    },
}


def backend_for(endpoint: str, bucket: str = BUCKET, **kwargs: Any) -> DuckDBBackend:
    return DuckDBBackend(
        bucket=bucket,
        check_interval_s=kwargs.pop("check_interval_s", 0),
        s3_client=kwargs.pop("s3_client", None) or s3_client(endpoint),
        filesystem=filesystem(endpoint),
        background=kwargs.pop("background", False),
        **kwargs,
    )


@pytest.fixture(scope="module")
def service(moto_endpoint: str) -> Iterator[ReportService]:
    write_reference_state(moto_endpoint)
    yield ReportService(backend_for(moto_endpoint))


def test_client_report_reads_the_published_version(service: ReportService) -> None:
    # Given version 2 is published (orders-b marked line (5678, 102) delivered)
    # When client 1001's report is asked for with its orders
    report = service.client_report(1001, OrdersPage(limit=10))
    # Then the figures are version 2's, each order counted once
    assert report == MOE_V2


def test_clients_in_partitions_reused_from_an_older_version(service: ReportService) -> None:
    # Given client 1002's client_bucket partitions live under version 1's prefix
    # When its report is asked for through version 2
    report = service.client_report(1002, OrdersPage())
    # Then the reused partition answers
    assert report == {
        "client_id": 1002,
        "client_name": "Kwik-E-Mart",
        "totals": {"orders": 1, "lines": 1, "units": 10, "sales": 20.0},
        "by_status": [{"status": "delivered", "orders": 1, "lines": 1, "units": 10, "sales": 20.0}],
        "by_channel": [{"channel": "B2B", "orders": 1, "lines": 1, "units": 10, "sales": 20.0}],
        "orders": {
            "items": [{"order_id": 5679, "order_date": "2026-01-11", "channel": "B2B", "lines": 1, "units": 10, "sales": 20.0, "lines_by_status": {"created": 0, "delivered": 1, "broken": 0}}],
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


@pytest.mark.parametrize("client_id", [1005, 1006, 5])
def test_clients_without_rows_in_the_version_do_not_exist(
    service: ReportService, client_id: int
) -> None:
    # Given clients with no rows in their client_bucket partition (1005 and 5 share client
    # 1001's partition)
    # When / Then
    with pytest.raises(ClientNotFoundError, match=f"client {client_id} "):
        service.client_report(client_id)


def test_sales_by_product_sorted_by_sales(service: ReportService) -> None:
    # When everything is reported
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
    # Then only the matching cells count
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


def test_health_reports_the_version_served(service: ReportService) -> None:
    # When the backend's status is read after the first queries
    status = service.backend.status()
    # Then it names version 2, its two batches, six current lines and the rows loaded
    snapshot = status["snapshot"]
    assert (snapshot["state_version"], snapshot["state_seq"]) == (V2, 2)
    assert (snapshot["batches"], snapshot["current_lines"]) == (2, 6)
    assert snapshot["rows"] == {
        "client_report": 14,
        "client_orders": 5,
        "product_daily": 6,
        "status_daily": 11,
        "spanning_order_cells": 0,
    }
    assert status["last_refresh_error"] is None


@pytest.fixture(scope="module")
def spanning(moto_endpoint: str) -> ReportService:
    write_spanning_state(moto_endpoint, "spanning-orders")
    return ReportService(backend_for(moto_endpoint, "spanning-orders"))


@pytest.mark.parametrize(
    ("filters", "total", "created", "delivered"),
    [
        # 9000 lies in two cells, 9001 in two: each still counts once.
        (ReportFilters(), 4, (3, 4, 24.0, 0.75), (2, 3, 23.0, 0.5)),
        # Retail holds one cell of 9000 and both of 9001.
        (ReportFilters(channel="Retail"), 3, (3, 3, 18.0, 1.0), (1, 2, 18.0, 0.3333)),
        # The 11th holds one cell of 9000 (B2B) and one of 9001.
        (ReportFilters(date_from=date(2026, 1, 11), date_to=date(2026, 1, 11)), 3, (3, 3, 19.0, 1.0), (1, 1, 8.0, 0.3333)),
        # One cell: nothing to correct.
        (ReportFilters(channel="Retail", date_to=date(2026, 1, 10)), 2, (1, 1, 5.0, 0.5), (1, 1, 10.0, 0.5)),
        (ReportFilters(channel="Kiosk"), 0, (0, 0, 0.0, 0.0), (0, 0, 0.0, 0.0)),
    ],
)
def test_orders_spanning_cells_are_counted_once_under_any_filter(
    spanning: ReportService,
    filters: ReportFilters,
    total: int,
    created: tuple[int, int, float, float],
    delivered: tuple[int, int, float, float],
) -> None:
    # When the status report is asked for
    report = spanning.order_status_report(filters)
    # Then every order counts once overall and once per status it has lines in
    assert report["total_orders"] == total
    assert [(s["status"], s["orders"], s["lines"], s["sales"], s["share_of_orders"]) for s in report["statuses"]] == [
        ("created", *created),
        ("delivered", *delivered),
        ("broken", 0, 0, 0.0, 0.0),
    ]


def test_product_description_is_the_most_recent_within_the_filter(spanning: ReportService) -> None:
    # Given product 103's cells end with orders-s (B2B) and orders-t (Retail) lines at the
    # same upload time, and product 102's with orders 9001 (Retail) and 9003 (Online)
    # When sales by product are asked for, then B2B alone
    everything = spanning.sales_by_product(ReportFilters())
    b2b = spanning.sales_by_product(ReportFilters(channel="B2B"))
    # Then ties on the upload time go to the later batch id, then to the higher order id
    assert [(p["product_id"], p["product_description"], p["orders"], p["units"], p["sales"], p["volume_l"]) for p in everything["products"]] == [
        (102, "Duff Classic Online", 3, 8, 20.0, 2.64),
        (103, "Duff Lite Renamed", 2, 8, 16.0, 4.0),
        (105, "Duff Special", 1, 2, 8.0, 2.0),
        (104, "Duff Dry", 1, 1, 3.0, 0.25),
    ]
    assert [(c["channel"], c["orders"]) for c in everything["products"][0]["by_channel"]] == [
        ("Retail", 2),
        ("Online", 1),
    ]
    assert [(p["product_id"], p["product_description"], p["sales"]) for p in b2b["products"]] == [
        (103, "Duff Lite", 6.0)
    ]


def test_an_order_spanning_days_and_channels_lists_the_earliest_of_each(
    spanning: ReportService,
) -> None:
    report = spanning.client_report(2001, OrdersPage())
    assert report["orders"]["items"][0] == {
        "order_id": 9000, "order_date": "2026-01-10", "channel": "B2B", "lines": 2,
        "units": 5, "sales": 11.0, "lines_by_status": {"created": 2, "delivered": 0, "broken": 0},
    }
    assert report["totals"] == {"orders": 2, "lines": 5, "units": 12, "sales": 32.0}
    assert spanning.backend.status()["snapshot"]["state_version"] == V_SPAN


def test_snapshot_follows_the_pointer_and_rebuilds_only_when_it_changes(
    moto_endpoint: str,
) -> None:
    # Given version 1 published and read once
    bucket = "moving-pointer"
    _, v2 = write_reference_state(moto_endpoint, bucket, publish=V1)
    backend = backend_for(moto_endpoint, bucket)
    service = ReportService(backend)
    assert service.client_report(1001, OrdersPage()) == MOE_V1
    assert service.order_status_report(ReportFilters())["total_orders"] == 4
    # When the pointer moves to version 2 and is checked twice
    StateStore(filesystem(moto_endpoint), bucket).publish(v2)
    rebuilt = backend.refresh()
    unchanged = backend.refresh()
    # Then the snapshot is rebuilt once and answers with version 2
    assert (rebuilt, unchanged) == (True, False)
    assert service.client_report(1001, OrdersPage()) == MOE_V2
    assert service.order_status_report(ReportFilters())["total_orders"] == 5
    assert backend.status()["snapshot"]["state_version"] == V2


class GatedS3:
    """The S3 client, holding back one key's GetObject until the gate opens."""

    def __init__(self, inner: Any, key: str) -> None:
        self.inner = inner
        self.key = key
        self.reached = threading.Event()
        self.gate = threading.Event()

    def get_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"] == self.key:
            self.reached.set()
            assert self.gate.wait(30), "the gate was never opened"
        return self.inner.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_requests_during_a_rebuild_read_the_previous_version_whole(moto_endpoint: str) -> None:
    # Given version 1 served, and a rebuild of version 2 held at its version manifest
    bucket = "gated-rebuild"
    _, v2 = write_reference_state(moto_endpoint, bucket, publish=V1)
    gated = GatedS3(s3_client(moto_endpoint), naming.state_manifest_key(V2))
    backend = backend_for(moto_endpoint, bucket, s3_client=gated, background=True, cache_entries=0)
    service = ReportService(backend)
    assert service.client_report(1001, OrdersPage()) == MOE_V1
    StateStore(filesystem(moto_endpoint), bucket).publish(v2)
    # When requests arrive while the rebuild waits, and after it finishes
    during = service.client_report(1001, OrdersPage())  # starts the background rebuild
    assert gated.reached.wait(10)
    also_during = service.client_report(1001, OrdersPage())
    gated.gate.set()
    deadline = time.monotonic() + 30
    while backend.status()["snapshot"]["state_version"] != V2:
        assert time.monotonic() < deadline, "the rebuild never finished"
        time.sleep(0.02)
    after = service.client_report(1001, OrdersPage())
    # Then every answer is one version's, both of its queries included
    assert (during, also_during, after) == (MOE_V1, MOE_V1, MOE_V2)
    assert backend.status()["last_refresh_error"] is None


def test_concurrent_requests_see_one_version_while_the_pointer_flips(moto_endpoint: str) -> None:
    # Given versions 1 and 2, and readers asking for client 1001 without pause
    bucket = "flipping-pointer"
    v1, v2 = write_reference_state(moto_endpoint, bucket, publish=V1)
    store = StateStore(filesystem(moto_endpoint), bucket)
    backend = backend_for(moto_endpoint, bucket, cache_entries=0)
    service = ReportService(backend)
    service.client_report(1001)
    seen: list[Any] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(service.client_report(1001, OrdersPage()))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    # When the pointer flips back and forth and the backend follows each time (the readers
    # check the pointer on every request, so one of them may load the version first)
    try:
        for manifest in (v2, v1, v2, v1, v2):
            store.publish(manifest)
            backend.refresh()
            assert backend.status()["snapshot"]["state_version"] == manifest["version"]
            time.sleep(0.05)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    # Then every answer is wholly version 1's or wholly version 2's, and both were served
    assert seen
    assert all(report in (MOE_V1, MOE_V2) for report in seen)
    assert MOE_V1 in seen and MOE_V2 in seen


def test_no_pointer_gives_empty_reports_and_unknown_clients(moto_endpoint: str) -> None:
    # Given a bucket where no state version was ever published
    bucket = "nothing-published"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    backend = backend_for(moto_endpoint, bucket)
    service = ReportService(backend)
    # When the reports are asked for
    products = service.sales_by_product(ReportFilters())
    statuses = service.order_status_report(ReportFilters(channel="Retail"))
    # Then they are empty, with every status at zero, and every client is unknown
    assert products["products"] == []
    assert statuses["total_orders"] == 0
    assert [(s["status"], s["orders"]) for s in statuses["statuses"]] == [
        ("created", 0), ("delivered", 0), ("broken", 0)
    ]
    with pytest.raises(ClientNotFoundError):
        service.client_report(1001)
    assert backend.status()["snapshot"]["state_version"] is None


def test_answers_are_reused_within_a_snapshot(moto_endpoint: str) -> None:
    # Given a backend whose snapshot is built (which answers the unfiltered reports at once)
    write_reference_state(moto_endpoint, "cached-orders")
    backend = backend_for(moto_endpoint, "cached-orders")
    service = ReportService(backend)
    backend.refresh()

    def counts() -> tuple[int, int]:
        snapshot = backend.status()["snapshot"]
        return snapshot["cache_hits"], snapshot["cache_misses"]

    hits, misses = counts()
    # When the unfiltered report, then a date-filtered one twice, are asked for
    unfiltered = service.sales_by_product(ReportFilters())
    after_unfiltered = counts()
    day = ReportFilters(date_from=date(2026, 1, 11), date_to=date(2026, 1, 11))
    first = service.sales_by_product(day)
    second = service.sales_by_product(day)
    # Then the warmed answer and the repeated one come from the cache, with the same figures
    assert (after_unfiltered, counts()) == ((hits + 1, misses), (hits + 2, misses + 1))
    assert first == second
    assert [p["product_id"] for p in unfiltered["products"]] == [105, 103, 102, 104]


def test_a_failed_rebuild_keeps_serving_the_previous_snapshot(moto_endpoint: str) -> None:
    # Given version 1 served
    bucket = "broken-later"
    v1, _ = write_reference_state(moto_endpoint, bucket, publish=V1)
    backend = backend_for(moto_endpoint, bucket)
    service = ReportService(backend)
    before = service.client_report(1001)
    # When the pointer names a version whose manifest was never written
    store = StateStore(filesystem(moto_endpoint), bucket)
    missing = "0000000003-dddddddd"
    store.publish({**v1, "version": missing, "seq": state.version_seq(missing)})
    after = service.client_report(1001)
    # Then requests keep version 1's figures and the failure shows in the status
    assert after == before
    assert after["by_status"][0] == {"status": "created", "orders": 1, "lines": 2, "units": 18, "sales": 39.0}
    error = backend.status()["last_refresh_error"]
    assert error is not None
    assert error.startswith(f"could not read s3://{bucket}/{naming.state_manifest_key(missing)}")
    assert backend.status()["snapshot"]["state_version"] == V1
