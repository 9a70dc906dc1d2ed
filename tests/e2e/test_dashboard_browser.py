"""The reports page in headless Chromium over the local stack: a known batch sequence, every
chart and table against the API's own answers, filters, the key, escaping, batch history.

The browser is required: without one these tests fail (duffbeer_local.browser says how to
install it), they never skip.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request

from duffbeer.contract import INPUT_COLUMN_NAMES
from duffbeer_local import browser as local_browser
from duffbeer_local.pipeline import LocalPipeline

pytestmark = pytest.mark.e2e

CLIENTS = {
    3001: 'Moe\'s "Tavern"',
    3002: '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>',
    3003: "Ünïcødé Bär 🍺 — Ωmega",
    3004: "Kwik-E-Mart",
}
PRODUCTS = {201: ("Duff Classic", "2.50"), 202: ("Duff Lite", "3.10"), 203: ("Duff Dry", "4.25")}
EXTRA_PRODUCT = (204, "Duff Special", "1.99")
CHANNELS = ("Retail", "Online", "B2B")
STATUSES = ("created", "delivered", "broken")
FIRST_DAY = date(2026, 11, 16)
GOOD_FILE = "week-47.csv"
BAD_FILE = "semicolons.csv"


def week_rows() -> list[dict[str, str]]:
    """24 lines in 12 orders (two lines each) over 5 days, 3 channels and 3 statuses."""
    rows = []
    for i in range(24):
        order = i // 2
        client = 3001 + order % 4
        product, description, price = (
            (201 + order % 3, *PRODUCTS[201 + order % 3]) if i % 2 == 0 else EXTRA_PRODUCT
        )
        rows.append(
            {
                "client_id": str(client),
                "client_name": CLIENTS[client],
                "order_id": str(7000 + order),
                "product_id": str(product),
                "product_description": description,
                "product_price": price,
                "product_ccf": str(1 + i % 7),
                "product_volume": "0.33",
                "point_of_sale_channel": CHANNELS[order % 3],
                "status": STATUSES[i % 3],
                "order_date": (FIRST_DAY + timedelta(days=order % 5)).isoformat(),
            }
        )
    return rows


def as_csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=INPUT_COLUMN_NAMES, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def cents(value: Any) -> Decimal:
    """An amount from the API (a number) or from the page ("€1,234.50"), to the cent."""
    return Decimal(re.sub(r"[^0-9.-]", "", str(value))).quantize(Decimal("0.01"))


def euros(value: Any) -> str:
    """An amount as the page shows it in an en-US browser: currency, thousands separators."""
    return f"€{cents(value):,.2f}"


@pytest.fixture(scope="module")
def loaded(
    pipeline: LocalPipeline, process: Callable[[str, str], dict[str, Any]]
) -> list[dict[str, str]]:
    """The batch sequence: a week of orders with one rejected line, then a file that fails
    validation (another delimiter)."""
    rows = week_rows()
    bad_price = {**rows[0], "order_id": "7999", "product_price": "two euros"}
    assert process(GOOD_FILE, as_csv([*rows, bad_price]))["status"] == "SUCCEEDED"
    assert process(BAD_FILE, "client_id;client_name\n1;x\n")["status"] == "FAILED"
    wait_until_served(pipeline, total_orders=12)
    return rows


def wait_until_served(pipeline: LocalPipeline, total_orders: int) -> None:
    """Each warm API worker loads a new publication in the background once a request
    reaches it: parallel requests reach them all, until every one answers fresh."""
    deadline = time.monotonic() + 60
    fresh_rounds = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        while fresh_rounds < 2:
            answers = pool.map(lambda _: pipeline.get("/order-status-report")[1], range(8))
            fresh = all(answer.get("total_orders") == total_orders for answer in answers)
            fresh_rounds = fresh_rounds + 1 if fresh else 0
            assert time.monotonic() < deadline, f"the API never served {total_orders} orders"
            time.sleep(0.5)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with local_browser.launch() as started:
        yield started


@dataclass
class Session:
    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def wait(self, state: str = "ready") -> None:
        # A selector, not a function: the page's policy forbids evaluating strings.
        self.page.wait_for_selector(f"body[data-state={state}]", state="attached", timeout=30_000)

    def chart(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = self.page.evaluate(
            """name => {
                const chart = Chart.getChart(document.getElementById('chart-' + name));
                const canvas = chart.canvas;
                return {labels: chart.data.labels,
                        datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data})),
                        width: canvas.width, height: canvas.height};
            }""",
            name,
        )
        return data

    def table(self, selector: str) -> list[list[str]]:
        rows: list[list[str]] = self.page.eval_on_selector_all(
            f"{selector} tbody tr",
            "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent.trim()))",
        )
        return rows


@pytest.fixture
def session(chromium: Browser) -> Iterator[Session]:
    # The locale fixes how the page formats numbers (en-US: €1,234.50).
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    opened = Session(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            opened.errors.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: opened.errors.append(f"pageerror: {error}"))

    def on_request(request: Request) -> None:
        # Playwright cannot register a bound built-in method as a handler.
        opened.requests.append(request)

    page.on("request", on_request)
    page.on("requestfailed", lambda r: opened.errors.append(f"request failed: {r.url}"))
    try:
        yield opened
    finally:
        context.close()


def open_with_key(session: Session, pipeline: LocalPipeline) -> None:
    session.page.goto(pipeline.dashboard_url())
    session.wait()


def api(pipeline: LocalPipeline, path: str) -> Any:
    status, body = pipeline.get(path)
    assert status == 200, (path, body)
    return body


def test_page_loads_without_console_errors_and_the_key_never_reaches_a_url(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    # Given the URL `make serve` prints, with the key in its #fragment
    response = session.page.goto(pipeline.dashboard_url())
    session.wait()
    # Then the page loaded with no error, under its own policy
    assert session.errors == []
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # And the key left the address bar for session storage
    assert session.page.url == f"{pipeline.api_url}/dashboard"
    stored = session.page.evaluate("sessionStorage.getItem('duffbeer.apiKey')")
    assert stored == pipeline.api_key
    # And no request carried it in its URL; the data routes carried it in the header only
    key = pipeline.api_key
    assert session.requests
    for request in session.requests:
        assert key not in request.url and quote(key) not in request.url
        assert request.url.startswith(f"{pipeline.api_url}/"), request.url  # no CDN
        if "/dashboard" not in request.url:
            assert request.headers.get("x-api-key") == key, request.url
        else:
            assert "x-api-key" not in request.headers, request.url


def test_each_chart_and_table_shows_the_api_figures_to_the_cent(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    products = api(pipeline, "/sales-by-product")["products"]
    statuses = api(pipeline, "/order-status-report")
    days = api(pipeline, "/daily-sales")["days"]
    clients = api(pipeline, "/top-clients?limit=10")["clients"]

    # The uploaded lines' own total, computed here from the CSV, is what the products add to
    expected_total = sum(
        (Decimal(r["product_price"]) * int(r["product_ccf"]) for r in loaded), Decimal(0)
    )
    table = session.table("#table-products")
    assert sum(cents(row[4]) for row in table) == expected_total

    chart = session.chart("products")
    labels = [f"{p['product_description']} (#{p['product_id']})" for p in products]
    assert chart["labels"] == labels
    assert [d["label"] for d in chart["datasets"]] == sorted(CHANNELS[::-1])
    for dataset in chart["datasets"]:
        expected = [
            next((c["sales"] for c in p["by_channel"] if c["channel"] == dataset["label"]), 0)
            for p in products
        ]
        assert dataset["data"] == expected
    assert [row[0] for row in table] == labels
    assert [row[4] for row in table] == [euros(p["sales"]) for p in products]

    chart = session.chart("statuses")
    assert chart["datasets"][0]["data"] == [s["orders"] for s in statuses["statuses"]]
    assert session.table("#table-statuses") == [
        [
            s["status"],
            str(s["orders"]),
            f"{s['share_of_orders'] * 100:.1f} %",
            str(s["lines"]),
            euros(s["sales"]),
        ]
        for s in statuses["statuses"]
    ]
    assert session.page.text_content("#total-orders") == "Distinct orders: 12"

    chart = session.chart("daily")
    assert chart["labels"] == [(FIRST_DAY + timedelta(days=n)).isoformat() for n in range(5)]
    assert chart["labels"] == [d["date"] for d in days]
    assert chart["datasets"][0]["data"] == [d["sales"] for d in days]
    assert session.table("#table-daily") == [
        [d["date"], str(d["units"]), euros(d["sales"])] for d in days
    ]

    chart = session.chart("clients")
    assert chart["labels"] == [f"{c['client_name']} (#{c['client_id']})" for c in clients]
    assert chart["datasets"][0]["data"] == [c["sales"] for c in clients]
    assert sorted(c["client_id"] for c in clients) == sorted(CLIENTS)
    for name in ("products", "statuses", "daily", "clients"):
        drawn = session.chart(name)
        assert drawn["width"] > 0 and drawn["height"] > 0, name
    assert session.errors == []


def test_headline_figures_totals_rows_and_units_over_the_filters(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    # The figures, computed here from the uploaded CSV rows
    sales = sum((Decimal(r["product_price"]) * int(r["product_ccf"]) for r in loaded), Decimal(0))
    litres = sum((Decimal(r["product_volume"]) * int(r["product_ccf"]) for r in loaded), Decimal(0))
    units = sum(int(r["product_ccf"]) for r in loaded)
    # Headline cards: sales in the currency /status reports, distinct orders, clients, litres
    assert api(pipeline, "/status")["currency"] == "EUR"
    assert session.page.text_content("#kpi-sales") == euros(sales)
    assert session.page.text_content("#kpi-orders") == "12"
    assert session.page.text_content("#kpi-clients") == str(len({r["client_id"] for r in loaded}))
    assert session.page.text_content("#kpi-litres") == f"{litres:,.3f} l"
    # Totals rows under the tables
    assert footer(session, "#table-products") == [
        "Total",
        *[euros(sum_channel(loaded, c)) for c in sorted(CHANNELS)],
        euros(sales),
        "",
        f"{units:,}",
        f"{litres:,.3f}",
    ]
    assert footer(session, "#table-statuses")[:2] == ["All statuses", "12"]
    assert footer(session, "#table-daily") == ["Total", f"{units:,}", euros(sales)]
    # Units on every money column and axis
    headers = session.page.eval_on_selector_all(
        "#table-products thead th", "cells => cells.map(c => c.textContent.trim())"
    )
    assert headers[-4:] == ["Total sales (EUR)", "Orders", "Units", "Volume (l)"]
    titles = session.page.evaluate(
        """() => ['products', 'daily', 'statuses'].map(name => {
            const chart = Chart.getChart(document.getElementById('chart-' + name));
            return chart.options.scales.y.title.text;
        })"""
    )
    assert titles == ["Sales (EUR)", "Sales (EUR)", "Orders"]
    assert session.errors == []


def sum_channel(rows: list[dict[str, str]], channel: str) -> Decimal:
    return sum(
        (
            Decimal(r["product_price"]) * int(r["product_ccf"])
            for r in rows
            if r["point_of_sale_channel"] == channel
        ),
        Decimal(0),
    )


def footer(session: Session, selector: str) -> list[str]:
    cells: list[str] = session.page.eval_on_selector_all(
        f"{selector} tfoot td", "cells => cells.map(c => c.textContent.trim())"
    )
    return cells


def test_a_filter_change_updates_every_chart_and_table(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    before = session.table("#table-daily")
    session.requests.clear()
    # When the user picks a channel and a date range and applies them
    session.page.select_option("#channel", "Online")
    session.page.fill("#date-from", "2026-11-17")
    session.page.fill("#date-to", "2026-11-19")
    session.page.click("#apply-filters")
    session.wait()
    # Then each route was asked with its own parameters
    query = "channel=Online&date_from=2026-11-17&date_to=2026-11-19"
    asked = {r.url.removeprefix(pipeline.api_url) for r in session.requests}
    for route in ("/sales-by-product", "/order-status-report", "/daily-sales"):
        assert f"{route}?{query}" in asked
    assert f"/top-clients?{query}&limit=10" in asked
    # And every chart and table shows the filtered answers
    days = api(pipeline, f"/daily-sales?{query}")["days"]
    products = api(pipeline, f"/sales-by-product?{query}")["products"]
    statuses = api(pipeline, f"/order-status-report?{query}")["statuses"]
    clients = api(pipeline, f"/top-clients?{query}&limit=10")["clients"]
    # The top clients within the filters, computed here from the uploaded rows
    sales: dict[int, Decimal] = {}
    for r in loaded:
        in_days = "2026-11-17" <= r["order_date"] <= "2026-11-19"
        if r["point_of_sale_channel"] == "Online" and in_days:
            line = Decimal(r["product_price"]) * int(r["product_ccf"])
            sales[int(r["client_id"])] = sales.get(int(r["client_id"]), Decimal(0)) + line
    ranked = sorted(sales.items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(c["client_id"], cents(c["sales"])) for c in clients] == ranked
    assert session.page.text_content("#kpi-clients") == str(len(ranked))
    assert session.table("#table-daily") != before
    assert session.chart("daily")["datasets"][0]["data"] == [d["sales"] for d in days]
    # Online: orders 7001 (11-17), 7004 (11-20), 7007 (11-18), 7010 (11-16)
    assert [d["date"] for d in days] == ["2026-11-17", "2026-11-18"]
    assert [d["label"] for d in session.chart("products")["datasets"]] == ["Online"]
    assert session.chart("products")["datasets"][0]["data"] == [p["sales"] for p in products]
    assert session.chart("statuses")["datasets"][0]["data"] == [s["orders"] for s in statuses]
    assert session.chart("clients")["datasets"][0]["data"] == [c["sales"] for c in clients]
    assert len(session.table("#table-products")) == len(products)
    assert session.errors == []


def test_a_wrong_key_shows_a_clear_message(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    session.page.goto(f"{pipeline.api_url}/dashboard#key=not-the-key")
    session.wait("key-needed")
    message = session.page.text_content("#message") or ""
    assert "The API key was refused (HTTP 403)" in message
    assert session.page.is_visible("#key-form")
    assert not session.page.is_visible("#reports")
    assert session.page.evaluate("sessionStorage.getItem('duffbeer.apiKey')") is None


def test_the_key_is_asked_for_once_and_kept_for_the_session(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    session.page.goto(f"{pipeline.api_url}/dashboard")
    session.wait("key-needed")
    assert "Enter the API key" in (session.page.text_content("#message") or "")
    session.page.fill("#api-key", pipeline.api_key)
    session.page.click("#key-form button[type=submit]")
    session.wait()
    session.page.reload()
    session.wait()
    assert session.page.is_visible("#reports")
    assert all(pipeline.api_key not in r.url for r in session.requests)
    assert session.errors == []


def test_names_with_quotes_markup_and_unicode_render_as_text(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    shown = [row[0] for row in session.table("#table-clients")]
    for client_id, name in CLIENTS.items():
        assert f"{name} (#{client_id})" in shown
    assert session.page.evaluate("window.__xss") is None
    assert session.page.eval_on_selector_all("img", "nodes => nodes.length") == 0
    assert session.page.eval_on_selector_all("script", "nodes => nodes.length") == 2
    assert session.errors == []


def test_client_search_and_a_clients_detail(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    session.page.fill("#client-search-text", "kwik")
    session.page.click("#client-search button[type=submit]")
    session.wait()
    rows = session.table("#table-clients")
    assert [row[0] for row in rows] == ["Kwik-E-Mart (#3004)"]
    session.page.click("#table-clients button[data-client-id='3004']")
    session.page.wait_for_selector("#client-detail:not([hidden]) #detail-orders tbody tr")
    report = api(pipeline, "/orders/3004?include=orders&limit=50")
    assert session.page.text_content("#client-detail h3") == "Kwik-E-Mart (#3004)"
    totals = report["totals"]
    assert f"sales {euros(totals['sales'])}" in (
        session.page.text_content("#client-detail p") or ""
    )
    orders = session.table("#detail-orders")
    assert [row[0] for row in orders] == [str(o["order_id"]) for o in report["orders"]["items"]]
    assert [row[5] for row in orders] == [euros(o["sales"]) for o in report["orders"]["items"]]
    assert session.errors == []


def test_the_batch_history_shows_each_run_and_a_failed_batchs_error(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    rows = session.table("#table-batches")
    by_file = {row[1].rsplit("/", 1)[-1]: row for row in rows}
    failed = by_file["semicolons.csv"]
    good = by_file["week-47.csv"]
    assert failed[2] == "FAILED"
    assert failed[7].startswith("DelimiterError: ")
    assert "delimited by ';'" in failed[7]
    assert good[2:7] == ["PUBLISHED", "25", "24", "1", "bad_price: 1"]
    assert good[7] == ""
    # Newest first: the failed upload came last
    assert rows[0] == failed
    assert session.errors == []


def wait_for_table(session: Session, selector: str, expected: list[list[str]]) -> None:
    """Polls the table until it shows `expected` (the page reloads after a history move)."""
    deadline = time.monotonic() + 30
    while session.table(selector) != expected:
        assert time.monotonic() < deadline, (selector, session.table(selector), expected)
        time.sleep(0.2)
    session.wait()


def test_a_view_lives_in_the_address_and_back_returns_to_the_previous_one(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session, chromium: Browser
) -> None:
    open_with_key(session, pipeline)
    everything = session.table("#table-daily")
    # When the user applies a channel and dates
    session.page.select_option("#channel", "Online")
    session.page.fill("#date-from", "2026-11-17")
    session.page.fill("#date-to", "2026-11-19")
    session.page.click("#apply-filters")
    session.wait()
    # Then the view is in the address's fragment, never the key
    view = "channel=Online&date_from=2026-11-17&date_to=2026-11-19"
    assert session.page.url == f"{pipeline.api_url}/dashboard#{view}"
    filtered = session.table("#table-daily")
    assert filtered != everything
    # When the user goes back, the previous view returns; forward brings the filters again
    session.page.go_back()
    wait_for_table(session, "#table-daily", everything)
    assert session.page.url == f"{pipeline.api_url}/dashboard"
    assert session.page.input_value("#channel") == ""
    session.page.go_forward()
    wait_for_table(session, "#table-daily", filtered)
    assert session.page.input_value("#date-from") == "2026-11-17"
    # When a colleague opens the address (with the key, as `make serve` prints it)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    try:
        other = Session(context.new_page())

        def on_request(request: Request) -> None:
            # Playwright cannot register a bound built-in method as a handler.
            other.requests.append(request)

        other.page.on("request", on_request)
        other.page.goto(f"{pipeline.api_url}/dashboard#key={pipeline.api_key}&{view}")
        other.wait()
        # Then the same view opens, and the key left the address
        assert other.page.url == f"{pipeline.api_url}/dashboard#{view}"
        assert other.page.input_value("#channel") == "Online"
        assert other.table("#table-daily") == filtered
        asked = {r.url.removeprefix(pipeline.api_url) for r in other.requests}
        assert f"/daily-sales?{view}" in asked
        assert all(pipeline.api_key not in r.url for r in other.requests)
    finally:
        context.close()
    assert session.errors == []


def test_date_presets_fill_the_dates_and_apply_them(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    today = date.today()  # the browser runs on this machine, in its time zone
    first_of_month = today.replace(day=1)
    last_month_end = first_of_month - timedelta(days=1)
    expected = {
        "this-month": (first_of_month, today),
        "last-month": (last_month_end.replace(day=1), last_month_end),
        "last-30-days": (today - timedelta(days=29), today),
        "year-to-date": (today.replace(month=1, day=1), today),
    }
    for preset, (first, last) in expected.items():
        session.requests.clear()
        session.page.select_option("#preset", preset)
        session.wait()
        assert session.page.input_value("#date-from") == first.isoformat(), preset
        assert session.page.input_value("#date-to") == last.isoformat(), preset
        asked = {r.url.removeprefix(pipeline.api_url) for r in session.requests}
        assert f"/daily-sales?date_from={first}&date_to={last}" in asked, preset
    session.page.select_option("#preset", "all")
    session.wait()
    assert session.page.input_value("#date-from") == ""
    assert session.page.url == f"{pipeline.api_url}/dashboard"
    assert session.errors == []


def test_the_page_says_which_batches_the_figures_include_and_that_the_newest_failed(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    runs = api(pipeline, "/batches")["items"]
    week = next(r for r in runs if r["file"].endswith("/week-47.csv"))
    note = session.page.text_content("#data-as-of") or ""
    assert note.startswith("Figures include every batch published up to ")
    assert "(the latest: week-47.csv)" in note
    assert week["in_reports_since"][:19].replace("T", " ") in note
    # The newest upload is the file with semicolons, which failed
    assert session.page.is_visible("#freshness-warning")
    warning = session.page.text_content("#freshness-warning") or ""
    assert warning == (
        "The newest upload, semicolons.csv, failed (DelimiterError): its figures are not included."
    )
    assert session.errors == []


def test_tables_sort_by_any_column_and_keep_the_order_on_reload(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    api_order = session.table("#table-products")
    by_total = sorted(api_order, key=lambda row: cents(row[4]))
    header = "#table-products th:nth-child(5)"
    # When the user clicks "Total sales": ascending, then descending
    session.page.click(f"{header} button")
    assert session.table("#table-products") == by_total
    assert session.page.get_attribute(header, "aria-sort") == "ascending"
    session.page.click(f"{header} button")
    assert session.table("#table-products") == by_total[::-1]
    assert session.page.get_attribute(header, "aria-sort") == "descending"
    # And a filter change keeps the chosen order
    session.page.select_option("#channel", "Retail")
    session.page.click("#apply-filters")
    session.wait()
    totals = [cents(row[2]) for row in session.table("#table-products")]
    assert totals == sorted(totals, reverse=True) and len(totals) > 1
    # And text columns sort as text
    session.page.click("#table-products th:nth-child(1) button")
    names = [row[0] for row in session.table("#table-products")]
    assert names == sorted(names)
    assert session.errors == []


def test_each_table_exports_its_rows_as_csv_named_after_the_filters(
    loaded: list[dict[str, str]], pipeline: LocalPipeline, session: Session
) -> None:
    open_with_key(session, pipeline)
    session.page.select_option("#channel", "Online")
    session.page.fill("#date-from", "2026-11-17")
    session.page.click("#apply-filters")
    session.wait()
    # When the products table is exported
    with session.page.expect_download() as started:
        session.page.click("#table-products-csv")
    download = started.value
    # Then the file is named after the table and the filters, and holds RFC 4180 CSV of the
    # table's rows under its column names, the figures plain (no currency or separators),
    # to the cent as the API gives them
    assert download.suggested_filename == "products_channel-Online_2026-11-17_to_end.csv"
    raw = Path(download.path()).read_bytes().decode("utf-8")
    assert raw.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert rows[0] == [
        "Product",
        "Online (EUR)",
        "Total sales (EUR)",
        "Orders",
        "Units",
        "Volume (l)",
    ]
    shown = session.table("#table-products")
    assert [r[0] for r in rows[1:]] == [r[0] for r in shown]
    products = api(pipeline, "/sales-by-product?channel=Online&date_from=2026-11-17")["products"]
    assert [r[2] for r in rows[1:]] == [f"{cents(p['sales'])}" for p in products]
    assert [r[5] for r in rows[1:]] == [f"{Decimal(str(p['volume_l'])):.3f}" for p in products]
    # And names with quotes and commas survive the round trip
    with session.page.expect_download() as started:
        session.page.click("#table-clients-csv")
    clients = list(csv.reader(io.StringIO(Path(started.value.path()).read_text(), newline="")))
    assert clients[0] == ["Client", "Orders", "Lines", "Units", "Sales (EUR)"]
    assert [row[0] for row in clients[1:]] == [row[0] for row in session.table("#table-clients")]
    top = api(pipeline, "/top-clients?channel=Online&date_from=2026-11-17&limit=10")["clients"]
    assert [row[4] for row in clients[1:]] == [f"{cents(c['sales'])}" for c in top]
    assert session.errors == []


# Last in this module: it publishes a second batch, which the tests above do not expect.
def test_figures_as_of_an_earlier_batch_show_the_reports_as_they_stood_then(
    loaded: list[dict[str, str]],
    pipeline: LocalPipeline,
    process: Callable[[str, str], dict[str, Any]],
    session: Session,
) -> None:
    # Given a second file published after the week's: one order of two cases at 1,234.50
    later = {**loaded[0], "order_id": "7100", "product_price": "1234.50", "product_ccf": "2"}
    assert process("week-48.csv", as_csv([later]))["status"] == "SUCCEEDED"
    wait_until_served(pipeline, total_orders=13)
    week_total = sum(
        (Decimal(r["product_price"]) * int(r["product_ccf"]) for r in loaded), Decimal(0)
    )
    # When the page is opened, it offers the instant each run entered the reports
    open_with_key(session, pipeline)
    options = session.page.eval_on_selector_all(
        "#as-of option", "nodes => nodes.map(o => [o.value, o.textContent])"
    )
    runs = api(pipeline, "/batches")["items"]
    entered = {r["file"].rsplit("/", 1)[-1]: r["in_reports_since"] for r in runs}
    assert entered["semicolons.csv"] is None
    assert entered["week-47.csv"] < entered["week-48.csv"]
    assert [value for value, _ in options] == ["", entered["week-48.csv"], entered["week-47.csv"]]
    assert options[0][1] == "Latest" and options[2][1].endswith("(week-47.csv)")
    # And the latest figures include the second file
    assert session.page.text_content("#total-orders") == "Distinct orders: 13"
    latest = sum(cents(row[4]) for row in session.table("#table-products"))
    assert latest == week_total + Decimal("2469.00")
    assert session.page.text_content("#kpi-sales") == euros(week_total + Decimal("2469.00"))
    # When the user picks the week's instant and applies it
    session.requests.clear()
    session.page.select_option("#as-of", entered["week-47.csv"])
    session.page.click("#apply-filters")
    session.wait()
    # Then every report route was asked as of that instant
    asked = [r.url.removeprefix(pipeline.api_url) for r in session.requests]
    as_of = f"as_of={quote(entered['week-47.csv'], safe='')}"
    for route in ("/sales-by-product", "/order-status-report", "/daily-sales", "/top-clients"):
        assert any(url.startswith(route) and as_of in url for url in asked), (route, asked)
    # And the figures are the week's alone, as the CSV gives them
    assert session.page.text_content("#total-orders") == "Distinct orders: 12"
    assert sum(cents(row[4]) for row in session.table("#table-products")) == week_total
    assert session.errors == []


# A realistic worst case for the layout: long names with spaces, one long unbroken word, and
# large amounts (the widest figures).
LONG_PRODUCT = (
    "Duff Beer Springfield Anniversary Limited Edition Twelve Pack of Glass Bottles "
    "with Collectible Nuclear Plant Coasters (Returnable, Deposit Included)"
)
LONG_CLIENT = "Springfield Municipal Stadium Concessions — Supercalifragilisticexpialidocious-Bar"
# Chromium's own measurement is in CSS pixels; one pixel of slack absorbs subpixel rounding.
# In a phone-wide window a table may scroll inside its card (it never draws outside it).
LAYOUT_PROBLEMS = """tablesMayScroll => {
    const slack = 1;
    const problems = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth + slack) {
        problems.push(`the page scrolls sideways: ${root.scrollWidth} > ${root.clientWidth}`);
    }
    const cards = Array.from(document.querySelectorAll('.card, .kpi'))
        .filter(card => card.getClientRects().length);
    // Measured with every card scrolled back to its start (a click may have scrolled one).
    cards.forEach(card => { card.scrollLeft = 0; });
    const name = el => el.id || el.querySelector('h2')?.textContent || el.className;
    cards.forEach((card, i) => {
        const box = card.getBoundingClientRect();
        // Everything in a card but a table fits the card's width.
        for (const el of card.querySelectorAll('*')) {
            if (el.closest('table') || !el.getClientRects().length) continue;
            const r = el.getBoundingClientRect();
            if (r.left < box.left - slack || r.right > box.right + slack) {
                problems.push(`${el.tagName}#${el.id} leaves card ${name(card)}`);
            }
        }
        const scrolls = card.scrollWidth > card.clientWidth + slack;
        if (scrolls && !(tablesMayScroll && card.querySelector('table'))) {
            problems.push(`card ${name(card)} scrolls sideways`);
        }
        for (const other of cards.slice(i + 1)) {
            const o = other.getBoundingClientRect();
            const apart = o.left >= box.right - slack || o.right <= box.left + slack
                || o.top >= box.bottom - slack || o.bottom <= box.top + slack;
            if (!apart) problems.push(`${name(card)} overlaps ${name(other)}`);
        }
    });
    return problems;
}"""


@pytest.mark.parametrize("width", [1400, 1024, 390])
def test_no_element_overflows_its_card_or_overlaps_another_at_any_width(
    loaded: list[dict[str, str]],
    pipeline: LocalPipeline,
    process: Callable[[str, str], dict[str, Any]],
    chromium: Browser,
    width: int,
) -> None:
    # Given long product and client names, and amounts in the hundred thousands (uploaded once)
    if not any(r["file"].endswith("long-names.csv") for r in api(pipeline, "/batches")["items"]):
        orders_before = api(pipeline, "/order-status-report")["total_orders"]
        long_line = {
            **loaded[0],
            "client_id": "3999",
            "client_name": LONG_CLIENT,
            "order_id": "7500",
            "product_id": "299",
            "product_description": LONG_PRODUCT,
            "product_price": "9999.99",
            "product_ccf": "48",
        }
        assert process("long-names.csv", as_csv([long_line]))["status"] == "SUCCEEDED"
        wait_until_served(pipeline, total_orders=orders_before + 1)
    # When the page is drawn in a window that wide, with a client's detail open
    context = chromium.new_context(viewport={"width": width, "height": 900}, locale="en-US")
    try:
        page = context.new_page()
        session = Session(page)
        open_with_key(session, pipeline)
        page.fill("#client-search-text", "Springfield")
        page.click("#client-search button[type=submit]")
        session.wait()
        page.click("#table-clients button[data-client-id='3999']")
        page.wait_for_selector("#client-detail:not([hidden]) #detail-orders tbody tr")
        # Then the long names are on the page, and no element leaves its card or covers another
        assert LONG_PRODUCT in (page.text_content("#table-products") or "")
        assert LONG_CLIENT in (page.text_content("#client-detail h3") or "")
        assert page.evaluate(LAYOUT_PROBLEMS, width < 600) == []
    finally:
        context.close()
