"""DuckDB backend over publications of hand-written state tables: the latest publication
only, orders spanning cells, a new publication, one publication per request while it
changes, and the reports as of an earlier instant."""
# ruff: noqa: E501  (the expected reports read best one line each)

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from duffbeer.errors import ClientNotFoundError, InvalidParameterError
from lambdas.api.params import OrdersPage, ReportFilters, encode_cursor
from lambdas.api.queries import ClientReport, ReportService
from tests.unit.test_api_support import (
    P1_AT,
    P2_AT,
    V1_ROWS,
    V2_ROWS,
    PublishedStates,
    reference_states,
    spanning_states,
)

# Client 1001 in publication 1 (batch orders-a alone) and 2 (orders-b delivered one line).
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


@pytest.fixture(scope="module")
def service() -> ReportService:
    return ReportService(reference_states().backend())


def test_client_report_reads_the_latest_publication(service: ReportService) -> None:
    # Given publication 2 is the latest (orders-b marked line (5678, 102) delivered)
    # When client 1001's report is asked for with its orders
    report = service.client_report(1001, OrdersPage(limit=10))
    # Then the figures are publication 2's, each order counted once
    assert report == MOE_V2


def test_clients_orders_of_orders_b_left_untouched_keep_their_figures(service: ReportService) -> None:
    # Given client 1002, whose rows orders-b did not touch
    # When its report is asked for through publication 2
    report = service.client_report(1002, OrdersPage())
    # Then its rows from orders-a answer
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
def test_clients_without_rows_in_the_publication_do_not_exist(
    service: ReportService, client_id: int
) -> None:
    # Given clients with no rows in the publication
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


def test_health_reports_the_publication_served(service: ReportService) -> None:
    # When the backend's status is read after the first queries
    status = service.backend.status()
    # Then it names publication 2 and the rows loaded
    assert status["publication"] == 2
    snapshot = status["snapshot"]
    assert snapshot["rows"] == {
        "client_report": 14,
        "client_orders": 5,
        "client_order_cells": 5,
        "product_daily": 6,
        "status_daily": 11,
        "spanning_order_cells": 0,
    }
    assert status["last_refresh_error"] is None


@pytest.fixture(scope="module")
def spanning() -> ReportService:
    return ReportService(spanning_states().backend())


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
    assert spanning.backend.status()["publication"] == 1


def test_snapshot_follows_publications_and_rebuilds_only_for_a_new_one() -> None:
    # Given publication 1 served and read once
    states = reference_states(both=False)
    backend = states.backend()
    service = ReportService(backend)
    assert service.client_report(1001, OrdersPage()) == MOE_V1
    assert service.order_status_report(ReportFilters())["total_orders"] == 4
    # When publication 2 lands and the backend checks twice
    states.publish(V2_ROWS, P2_AT)
    rebuilt = backend.refresh()
    unchanged = backend.refresh()
    # Then the snapshot is rebuilt once and answers with publication 2
    assert (rebuilt, unchanged) == (True, False)
    assert service.client_report(1001, OrdersPage()) == MOE_V2
    assert service.order_status_report(ReportFilters())["total_orders"] == 5
    assert backend.status()["publication"] == 2


def test_requests_during_a_rebuild_read_the_previous_publication_whole() -> None:
    # Given publication 1 served, and a rebuild of publication 2 held half-way
    states = reference_states(both=False)
    backend = states.backend(background=True, cache_entries=0)
    service = ReportService(backend)
    assert service.client_report(1001, OrdersPage()) == MOE_V1
    states.publish(V2_ROWS, P2_AT)
    states.gate.clear()
    # When requests arrive while the rebuild waits, and after it finishes
    loads = len(states.loads)
    during = service.client_report(1001, OrdersPage())  # starts the background rebuild
    also_during = service.client_report(1001, OrdersPage())
    states.gate.set()
    deadline = time.monotonic() + 30
    while backend.status()["publication"] != 2:
        assert time.monotonic() < deadline, "the rebuild never finished"
        time.sleep(0.02)
    after = service.client_report(1001, OrdersPage())
    # Then every answer is one publication's, both of its queries included
    assert (during, also_during, after) == (MOE_V1, MOE_V1, MOE_V2)
    assert len(states.loads) > loads
    assert backend.status()["last_refresh_error"] is None


def test_concurrent_requests_see_one_publication_while_new_ones_land() -> None:
    # Given publication 1, and readers asking for client 1001 without pause
    states = reference_states(both=False)
    backend = states.backend(cache_entries=0)
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
    # When publications alternate between the two states, the backend following each
    try:
        for seq, rows in enumerate((V2_ROWS, V1_ROWS, V2_ROWS, V1_ROWS), start=2):
            states.publish(rows, P2_AT + timedelta(minutes=seq))
            backend.refresh()
            assert backend.status()["publication"] == seq
            time.sleep(0.05)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    # Then every answer is wholly publication 1's state or wholly 2's, and both were served
    assert seen
    assert all(report in (MOE_V1, MOE_V2) for report in seen)
    assert MOE_V1 in seen and MOE_V2 in seen


def test_nothing_published_gives_empty_reports_and_unknown_clients() -> None:
    # Given no publication yet
    backend = PublishedStates().backend()
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
    assert backend.status()["publication"] is None


def test_answers_are_reused_within_a_snapshot() -> None:
    # Given a backend whose snapshot is built (which answers the unfiltered reports at once)
    backend = reference_states().backend()
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


def test_a_failed_rebuild_keeps_serving_the_previous_snapshot() -> None:
    # Given publication 1 served
    states = reference_states(both=False)
    backend = states.backend()
    service = ReportService(backend)
    before = service.client_report(1001)
    # When a publication names a snapshot that cannot be read
    broken = states.publish(V2_ROWS, P2_AT)
    missing = broken.snapshots["client_report"]
    del states._tables[missing]
    after = service.client_report(1001)
    # Then requests keep publication 1's figures and the failure shows in the status
    assert after == before
    assert after["by_status"][0] == {"status": "created", "orders": 1, "lines": 2, "units": 18, "sales": 39.0}
    error = backend.status()["last_refresh_error"]
    assert error is not None
    assert error.startswith(f"could not read client_report at snapshot {missing} (publication 2)")
    assert backend.status()["publication"] == 1


def test_reports_as_of_an_instant_read_the_publication_current_then() -> None:
    # Given publications 1 (11:00 on the 1st) and 2 (10:00 on the 2nd)
    service = ReportService(reference_states().backend())
    # When client 1001 is asked for as of moments around them
    just_after_1 = service.client_report(1001, OrdersPage(), P1_AT + timedelta(seconds=1))
    at_2 = service.client_report(1001, OrdersPage(), P2_AT)
    now = service.client_report(1001, OrdersPage(), datetime(2030, 1, 1, tzinfo=UTC))
    # Then each answer is the publication current at that moment
    assert (just_after_1, at_2, now) == (MOE_V1, MOE_V2, MOE_V2)
    # And the status report as of publication 1 counts its four orders
    as_of_1 = service.order_status_report(ReportFilters(as_of=P1_AT))
    assert as_of_1["total_orders"] == 4


def test_reports_as_of_before_the_first_publication_are_refused() -> None:
    service = ReportService(reference_states().backend())
    with pytest.raises(InvalidParameterError) as raised:
        service.sales_by_product(ReportFilters(as_of=P1_AT - timedelta(seconds=1)))
    assert str(raised.value) == (
        "as_of 2026-01-01T10:59:59+00:00 is before the first publication of the reports "
        "still kept (2026-01-01T11:00:00+00:00)"
    )


def test_as_of_snapshots_are_built_once_and_kept() -> None:
    # Given the latest publication served
    states = reference_states()
    service = ReportService(states.backend())
    service.client_report(1001)
    loads = len(states.loads)
    # When an earlier instant is asked for three times
    for _ in range(3):
        service.client_report(1001, None, P1_AT)
    # Then publication 1's tables were loaded once
    assert len(states.loads) - loads == 6
