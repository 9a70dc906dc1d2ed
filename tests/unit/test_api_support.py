"""Shared pieces of the API tests: a moto server, publications of hand-written state tables
served to the DuckDB backend, events."""
# ruff: noqa: E501  (the hand-written rows read best one line each)

from __future__ import annotations

import copy
import itertools
import json
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from moto.server import ThreadedMotoServer

from duffbeer import state
from lambdas.api.backends.duckdb_backend import DuckDBBackend

EVENTS = Path(__file__).resolve().parents[1] / "events"
BUCKET = "duffbeer-processed-orders"

Rows = Sequence[tuple[Any, ...]]

T_A = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)  # batch orders-a's upload
T_B = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)  # batch orders-b's upload, later
D10, D11, D12 = date(2026, 1, 10), date(2026, 1, 11), date(2026, 1, 12)
MOE, KWIK, KRUSTY, MALL = "Moe's Tavern", "Kwik-E-Mart", "Krusty Burger", "Springfield Mall"

# The two publications of the reference state.
P1_AT = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
P2_AT = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)

# --- Publication 1: batch orders-a alone --------------------------------------------------------
# Its current lines (channel and date last, as the partition values of order_lines_current):
#   1001 5678/102 Duff Classic  2.50 x 6  Retail 01-10 created     15.00  1.980 l
#   1001 5678/103 Duff Lite     2.00 x 12 Retail 01-10 created     24.00  6.000 l
#   1002 5679/103 Duff Lite     2.00 x 10 B2B    01-11 delivered   20.00  5.000 l
#   1003 5680/104 Duff Dry      3.00 x 8  Online 01-11 broken      24.00  2.000 l
#   1001 5690/102 Duff Classic  2.50 x 4  Online 01-12 delivered   10.00  1.320 l
# --- Publication 2: orders-b on top: (5678, 102) is now delivered, and a new order 5700 ----
#   1001 5678/102 Duff Classic  2.50 x 6  Retail 01-10 delivered   15.00  1.980 l  (orders-b)
#   1004 5700/105 Duff Special  4.00 x 24 Retail 01-12 created     96.00 24.000 l  (orders-b)


def _line(
    client: int,
    name: str,
    order: int,
    product: int,
    description: str,
    price: str,
    units: int,
    volume: str,
    status: str,
    batch: str,
    at: datetime,
    channel: str,
    day: date,
) -> tuple[Any, ...]:
    total = Decimal(price) * units
    litres = Decimal(volume) * units
    return (
        client,
        name,
        order,
        product,
        description,
        Decimal(price),
        units,
        Decimal(volume),
        status,
        total,
        litres,
        batch,
        at,
        channel,
        day,
    )


V1_ROWS: dict[str, Rows] = {
    state.CURRENT_LINES_TABLE: [
        _line(
            1001,
            MOE,
            5678,
            102,
            "Duff Classic",
            "2.50",
            6,
            "0.330",
            "created",
            "orders-a",
            T_A,
            "Retail",
            D10,
        ),
        _line(
            1001,
            MOE,
            5678,
            103,
            "Duff Lite",
            "2.00",
            12,
            "0.500",
            "created",
            "orders-a",
            T_A,
            "Retail",
            D10,
        ),
        _line(
            1002,
            KWIK,
            5679,
            103,
            "Duff Lite",
            "2.00",
            10,
            "0.500",
            "delivered",
            "orders-a",
            T_A,
            "B2B",
            D11,
        ),
        _line(
            1003,
            KRUSTY,
            5680,
            104,
            "Duff Dry",
            "3.00",
            8,
            "0.250",
            "broken",
            "orders-a",
            T_A,
            "Online",
            D11,
        ),
        _line(
            1001,
            MOE,
            5690,
            102,
            "Duff Classic",
            "2.50",
            4,
            "0.330",
            "delivered",
            "orders-a",
            T_A,
            "Online",
            D12,
        ),
    ],
    # client_id, status, channel, all_statuses, all_channels, client_name, orders, lines, units, total_sales
    state.CLIENT_REPORT_TABLE: [
        (1001, None, None, 1, 1, MOE, 2, 3, 22, Decimal("49.00")),
        (1001, "created", None, 0, 1, MOE, 1, 2, 18, Decimal("39.00")),
        (1001, "delivered", None, 0, 1, MOE, 1, 1, 4, Decimal("10.00")),
        (1001, None, "Online", 1, 0, MOE, 1, 1, 4, Decimal("10.00")),
        (1001, None, "Retail", 1, 0, MOE, 1, 2, 18, Decimal("39.00")),
        (1002, None, None, 1, 1, KWIK, 1, 1, 10, Decimal("20.00")),
        (1002, "delivered", None, 0, 1, KWIK, 1, 1, 10, Decimal("20.00")),
        (1002, None, "B2B", 1, 0, KWIK, 1, 1, 10, Decimal("20.00")),
        (1003, None, None, 1, 1, KRUSTY, 1, 1, 8, Decimal("24.00")),
        (1003, "broken", None, 0, 1, KRUSTY, 1, 1, 8, Decimal("24.00")),
        (1003, None, "Online", 1, 0, KRUSTY, 1, 1, 8, Decimal("24.00")),
    ],
    # client_id, order_id, order_date, channel, lines, units, total_sales, created/delivered/broken lines, client_name, latest event, batch, product
    state.CLIENT_ORDERS_TABLE: [
        (1001, 5678, D10, "Retail", 2, 18, Decimal("39.00"), 2, 0, 0, MOE, T_A, "orders-a", 103),
        (1001, 5690, D12, "Online", 1, 4, Decimal("10.00"), 0, 1, 0, MOE, T_A, "orders-a", 102),
        (1002, 5679, D11, "B2B", 1, 10, Decimal("20.00"), 0, 1, 0, KWIK, T_A, "orders-a", 103),
        (1003, 5680, D11, "Online", 1, 8, Decimal("24.00"), 0, 0, 1, KRUSTY, T_A, "orders-a", 104),
    ],
    # client_id, order_id, channel, order_date, lines, units, total_sales
    state.CLIENT_ORDER_CELLS_TABLE: [
        (1001, 5678, "Retail", D10, 2, 18, Decimal("39.00")),
        (1002, 5679, "B2B", D11, 1, 10, Decimal("20.00")),
        (1003, 5680, "Online", D11, 1, 8, Decimal("24.00")),
        (1001, 5690, "Online", D12, 1, 4, Decimal("10.00")),
    ],
    # product_id, channel, order_date, description, latest event, batch, order, orders, units, total_sales, total_volume_l
    state.PRODUCT_DAILY_TABLE: [
        (
            102,
            "Retail",
            D10,
            "Duff Classic",
            T_A,
            "orders-a",
            5678,
            1,
            6,
            Decimal("15.00"),
            Decimal("1.980"),
        ),
        (
            102,
            "Online",
            D12,
            "Duff Classic",
            T_A,
            "orders-a",
            5690,
            1,
            4,
            Decimal("10.00"),
            Decimal("1.320"),
        ),
        (
            103,
            "Retail",
            D10,
            "Duff Lite",
            T_A,
            "orders-a",
            5678,
            1,
            12,
            Decimal("24.00"),
            Decimal("6.000"),
        ),
        (
            103,
            "B2B",
            D11,
            "Duff Lite",
            T_A,
            "orders-a",
            5679,
            1,
            10,
            Decimal("20.00"),
            Decimal("5.000"),
        ),
        (
            104,
            "Online",
            D11,
            "Duff Dry",
            T_A,
            "orders-a",
            5680,
            1,
            8,
            Decimal("24.00"),
            Decimal("2.000"),
        ),
    ],
    # status, channel, order_date, all_statuses, orders, lines, total_sales
    state.STATUS_DAILY_TABLE: [
        ("created", "Retail", D10, 0, 1, 2, Decimal("39.00")),
        (None, "Retail", D10, 1, 1, 2, Decimal("39.00")),
        ("delivered", "B2B", D11, 0, 1, 1, Decimal("20.00")),
        (None, "B2B", D11, 1, 1, 1, Decimal("20.00")),
        ("broken", "Online", D11, 0, 1, 1, Decimal("24.00")),
        (None, "Online", D11, 1, 1, 1, Decimal("24.00")),
        ("delivered", "Online", D12, 0, 1, 1, Decimal("10.00")),
        (None, "Online", D12, 1, 1, 1, Decimal("10.00")),
    ],
    state.SPANNING_ORDER_CELLS_TABLE: [],
    # client_id, client_name, total_orders, total_sales
    state.ORDERS_SUMMARY_TABLE: [
        (1001, MOE, 2, 49.0),
        (1002, KWIK, 1, 20.0),
        (1003, KRUSTY, 1, 24.0),
    ],
}

V2_ROWS: dict[str, Rows] = {
    state.CURRENT_LINES_TABLE: [
        _line(
            1001,
            MOE,
            5678,
            102,
            "Duff Classic",
            "2.50",
            6,
            "0.330",
            "delivered",
            "orders-b",
            T_B,
            "Retail",
            D10,
        ),
        _line(
            1001,
            MOE,
            5678,
            103,
            "Duff Lite",
            "2.00",
            12,
            "0.500",
            "created",
            "orders-a",
            T_A,
            "Retail",
            D10,
        ),
        _line(
            1002,
            KWIK,
            5679,
            103,
            "Duff Lite",
            "2.00",
            10,
            "0.500",
            "delivered",
            "orders-a",
            T_A,
            "B2B",
            D11,
        ),
        _line(
            1003,
            KRUSTY,
            5680,
            104,
            "Duff Dry",
            "3.00",
            8,
            "0.250",
            "broken",
            "orders-a",
            T_A,
            "Online",
            D11,
        ),
        _line(
            1001,
            MOE,
            5690,
            102,
            "Duff Classic",
            "2.50",
            4,
            "0.330",
            "delivered",
            "orders-a",
            T_A,
            "Online",
            D12,
        ),
        _line(
            1004,
            MALL,
            5700,
            105,
            "Duff Special",
            "4.00",
            24,
            "1.000",
            "created",
            "orders-b",
            T_B,
            "Retail",
            D12,
        ),
    ],
    state.CLIENT_REPORT_TABLE: [
        *(row for row in V1_ROWS[state.CLIENT_REPORT_TABLE] if row[0] in (1002, 1003)),
        (1001, None, None, 1, 1, MOE, 2, 3, 22, Decimal("49.00")),
        (1001, "created", None, 0, 1, MOE, 1, 1, 12, Decimal("24.00")),
        (1001, "delivered", None, 0, 1, MOE, 2, 2, 10, Decimal("25.00")),
        (1001, None, "Online", 1, 0, MOE, 1, 1, 4, Decimal("10.00")),
        (1001, None, "Retail", 1, 0, MOE, 1, 2, 18, Decimal("39.00")),
        (1004, None, None, 1, 1, MALL, 1, 1, 24, Decimal("96.00")),
        (1004, "created", None, 0, 1, MALL, 1, 1, 24, Decimal("96.00")),
        (1004, None, "Retail", 1, 0, MALL, 1, 1, 24, Decimal("96.00")),
    ],
    state.CLIENT_ORDERS_TABLE: [
        *(row for row in V1_ROWS[state.CLIENT_ORDERS_TABLE] if row[0] in (1002, 1003)),
        (1001, 5678, D10, "Retail", 2, 18, Decimal("39.00"), 1, 1, 0, MOE, T_B, "orders-b", 102),
        (1001, 5690, D12, "Online", 1, 4, Decimal("10.00"), 0, 1, 0, MOE, T_A, "orders-a", 102),
        (1004, 5700, D12, "Retail", 1, 24, Decimal("96.00"), 1, 0, 0, MALL, T_B, "orders-b", 105),
    ],
    # client_id, order_id, channel, order_date, lines, units, total_sales
    state.CLIENT_ORDER_CELLS_TABLE: [
        (1001, 5678, "Retail", D10, 2, 18, Decimal("39.00")),
        (1002, 5679, "B2B", D11, 1, 10, Decimal("20.00")),
        (1003, 5680, "Online", D11, 1, 8, Decimal("24.00")),
        (1001, 5690, "Online", D12, 1, 4, Decimal("10.00")),
        (1004, 5700, "Retail", D12, 1, 24, Decimal("96.00")),
    ],
    state.PRODUCT_DAILY_TABLE: [
        (
            102,
            "Retail",
            D10,
            "Duff Classic",
            T_B,
            "orders-b",
            5678,
            1,
            6,
            Decimal("15.00"),
            Decimal("1.980"),
        ),
        (
            102,
            "Online",
            D12,
            "Duff Classic",
            T_A,
            "orders-a",
            5690,
            1,
            4,
            Decimal("10.00"),
            Decimal("1.320"),
        ),
        (
            103,
            "Retail",
            D10,
            "Duff Lite",
            T_A,
            "orders-a",
            5678,
            1,
            12,
            Decimal("24.00"),
            Decimal("6.000"),
        ),
        (
            103,
            "B2B",
            D11,
            "Duff Lite",
            T_A,
            "orders-a",
            5679,
            1,
            10,
            Decimal("20.00"),
            Decimal("5.000"),
        ),
        (
            104,
            "Online",
            D11,
            "Duff Dry",
            T_A,
            "orders-a",
            5680,
            1,
            8,
            Decimal("24.00"),
            Decimal("2.000"),
        ),
        (
            105,
            "Retail",
            D12,
            "Duff Special",
            T_B,
            "orders-b",
            5700,
            1,
            24,
            Decimal("96.00"),
            Decimal("24.000"),
        ),
    ],
    state.STATUS_DAILY_TABLE: [
        ("created", "Retail", D10, 0, 1, 1, Decimal("24.00")),
        ("delivered", "Retail", D10, 0, 1, 1, Decimal("15.00")),
        (None, "Retail", D10, 1, 1, 2, Decimal("39.00")),
        ("delivered", "B2B", D11, 0, 1, 1, Decimal("20.00")),
        (None, "B2B", D11, 1, 1, 1, Decimal("20.00")),
        ("broken", "Online", D11, 0, 1, 1, Decimal("24.00")),
        (None, "Online", D11, 1, 1, 1, Decimal("24.00")),
        ("delivered", "Online", D12, 0, 1, 1, Decimal("10.00")),
        (None, "Online", D12, 1, 1, 1, Decimal("10.00")),
        ("created", "Retail", D12, 0, 1, 1, Decimal("96.00")),
        (None, "Retail", D12, 1, 1, 1, Decimal("96.00")),
    ],
    state.SPANNING_ORDER_CELLS_TABLE: [],
    state.ORDERS_SUMMARY_TABLE: [
        (1001, MOE, 2, 49.0),
        (1002, KWIK, 1, 20.0),
        (1003, KRUSTY, 1, 24.0),
        (1004, MALL, 1, 96.0),
    ],
}
# --- A state with orders spanning cells -----------------------------------------------------
# All lines from one upload time T_S; orders-t sorts after orders-s, so F is more recent than
# every orders-s line, and among orders-s lines the higher order id is the more recent.
#   A 2001 9000/102 Duff Classic         2.50 x 2 Retail 01-10 created    5.00 (orders-s)
#   B 2001 9000/103 Duff Lite            2.00 x 3 B2B    01-11 created    6.00 (orders-s)
#   C 2001 9001/102 Duff Classic         2.50 x 4 Retail 01-10 delivered 10.00 (orders-s)
#   D 2001 9001/104 Duff Dry             3.00 x 1 Retail 01-11 created    3.00 (orders-s)
#   E 2001 9001/105 Duff Special         4.00 x 2 Retail 01-11 delivered  8.00 (orders-s)
#   F 2002 9002/103 Duff Lite Renamed    2.00 x 5 Retail 01-11 created   10.00 (orders-t)
#   G 2002 9003/102 Duff Classic Online  2.50 x 2 Online 01-12 delivered  5.00 (orders-s)
# Order 9000 lies in (Retail, 01-10) and (B2B, 01-11); 9001 in (Retail, 01-10) and
# (Retail, 01-11); 9002 and 9003 in one cell each.
T_S = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
BARNEY, LENNY = "Barney", "Lenny"

SPANNING_ROWS: dict[str, Rows] = {
    state.CURRENT_LINES_TABLE: [
        _line(
            2001,
            BARNEY,
            9000,
            102,
            "Duff Classic",
            "2.50",
            2,
            "0.330",
            "created",
            "orders-s",
            T_S,
            "Retail",
            D10,
        ),
        _line(
            2001,
            BARNEY,
            9000,
            103,
            "Duff Lite",
            "2.00",
            3,
            "0.500",
            "created",
            "orders-s",
            T_S,
            "B2B",
            D11,
        ),
        _line(
            2001,
            BARNEY,
            9001,
            102,
            "Duff Classic",
            "2.50",
            4,
            "0.330",
            "delivered",
            "orders-s",
            T_S,
            "Retail",
            D10,
        ),
        _line(
            2001,
            BARNEY,
            9001,
            104,
            "Duff Dry",
            "3.00",
            1,
            "0.250",
            "created",
            "orders-s",
            T_S,
            "Retail",
            D11,
        ),
        _line(
            2001,
            BARNEY,
            9001,
            105,
            "Duff Special",
            "4.00",
            2,
            "1.000",
            "delivered",
            "orders-s",
            T_S,
            "Retail",
            D11,
        ),
        _line(
            2002,
            LENNY,
            9002,
            103,
            "Duff Lite Renamed",
            "2.00",
            5,
            "0.500",
            "created",
            "orders-t",
            T_S,
            "Retail",
            D11,
        ),
        _line(
            2002,
            LENNY,
            9003,
            102,
            "Duff Classic Online",
            "2.50",
            2,
            "0.330",
            "delivered",
            "orders-s",
            T_S,
            "Online",
            D12,
        ),
    ],
    state.CLIENT_REPORT_TABLE: [
        (2001, None, None, 1, 1, BARNEY, 2, 5, 12, Decimal("32.00")),
        (2001, "created", None, 0, 1, BARNEY, 2, 3, 6, Decimal("14.00")),
        (2001, "delivered", None, 0, 1, BARNEY, 1, 2, 6, Decimal("18.00")),
        (2001, None, "B2B", 1, 0, BARNEY, 1, 1, 3, Decimal("6.00")),
        (2001, None, "Retail", 1, 0, BARNEY, 2, 4, 9, Decimal("26.00")),
        (2002, None, None, 1, 1, LENNY, 2, 2, 7, Decimal("15.00")),
        (2002, "created", None, 0, 1, LENNY, 1, 1, 5, Decimal("10.00")),
        (2002, "delivered", None, 0, 1, LENNY, 1, 1, 2, Decimal("5.00")),
        (2002, None, "Online", 1, 0, LENNY, 1, 1, 2, Decimal("5.00")),
        (2002, None, "Retail", 1, 0, LENNY, 1, 1, 5, Decimal("10.00")),
    ],
    state.CLIENT_ORDERS_TABLE: [
        (2001, 9000, D10, "B2B", 2, 5, Decimal("11.00"), 2, 0, 0, BARNEY, T_S, "orders-s", 103),
        (2001, 9001, D10, "Retail", 3, 7, Decimal("21.00"), 1, 2, 0, BARNEY, T_S, "orders-s", 105),
        (2002, 9002, D11, "Retail", 1, 5, Decimal("10.00"), 1, 0, 0, LENNY, T_S, "orders-t", 103),
        (2002, 9003, D12, "Online", 1, 2, Decimal("5.00"), 0, 1, 0, LENNY, T_S, "orders-s", 102),
    ],
    # client_id, order_id, channel, order_date, lines, units, total_sales
    state.CLIENT_ORDER_CELLS_TABLE: [
        (2001, 9000, "Retail", D10, 1, 2, Decimal("5.00")),
        (2001, 9000, "B2B", D11, 1, 3, Decimal("6.00")),
        (2001, 9001, "Retail", D10, 1, 4, Decimal("10.00")),
        (2001, 9001, "Retail", D11, 2, 3, Decimal("11.00")),
        (2002, 9002, "Retail", D11, 1, 5, Decimal("10.00")),
        (2002, 9003, "Online", D12, 1, 2, Decimal("5.00")),
    ],
    state.PRODUCT_DAILY_TABLE: [
        (
            102,
            "Retail",
            D10,
            "Duff Classic",
            T_S,
            "orders-s",
            9001,
            2,
            6,
            Decimal("15.00"),
            Decimal("1.980"),
        ),
        (
            102,
            "Online",
            D12,
            "Duff Classic Online",
            T_S,
            "orders-s",
            9003,
            1,
            2,
            Decimal("5.00"),
            Decimal("0.660"),
        ),
        (
            103,
            "B2B",
            D11,
            "Duff Lite",
            T_S,
            "orders-s",
            9000,
            1,
            3,
            Decimal("6.00"),
            Decimal("1.500"),
        ),
        (
            103,
            "Retail",
            D11,
            "Duff Lite Renamed",
            T_S,
            "orders-t",
            9002,
            1,
            5,
            Decimal("10.00"),
            Decimal("2.500"),
        ),
        (
            104,
            "Retail",
            D11,
            "Duff Dry",
            T_S,
            "orders-s",
            9001,
            1,
            1,
            Decimal("3.00"),
            Decimal("0.250"),
        ),
        (
            105,
            "Retail",
            D11,
            "Duff Special",
            T_S,
            "orders-s",
            9001,
            1,
            2,
            Decimal("8.00"),
            Decimal("2.000"),
        ),
    ],
    state.STATUS_DAILY_TABLE: [
        ("created", "Retail", D10, 0, 1, 1, Decimal("5.00")),
        ("delivered", "Retail", D10, 0, 1, 1, Decimal("10.00")),
        (None, "Retail", D10, 1, 2, 2, Decimal("15.00")),
        ("created", "B2B", D11, 0, 1, 1, Decimal("6.00")),
        (None, "B2B", D11, 1, 1, 1, Decimal("6.00")),
        ("created", "Retail", D11, 0, 2, 2, Decimal("13.00")),
        ("delivered", "Retail", D11, 0, 1, 1, Decimal("8.00")),
        (None, "Retail", D11, 1, 2, 3, Decimal("21.00")),
        ("delivered", "Online", D12, 0, 1, 1, Decimal("5.00")),
        (None, "Online", D12, 1, 1, 1, Decimal("5.00")),
    ],
    # order_id, status, channel, order_date
    state.SPANNING_ORDER_CELLS_TABLE: [
        (9000, None, "Retail", D10),
        (9000, None, "B2B", D11),
        (9000, "created", "Retail", D10),
        (9000, "created", "B2B", D11),
        (9001, None, "Retail", D10),
        (9001, None, "Retail", D11),
        (9001, "delivered", "Retail", D10),
        (9001, "created", "Retail", D11),
        (9001, "delivered", "Retail", D11),
    ],
    state.ORDERS_SUMMARY_TABLE: [
        (2001, BARNEY, 2, 32.0),
        (2002, LENNY, 2, 15.0),
    ],
}


# --- Publications served to the DuckDB backend ---------------------------------------------

_ARROW_TYPES = {
    "int": pa.int32(),
    "bigint": pa.int64(),
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "double": pa.float64(),
}


def arrow_type(glue_type: str) -> pa.DataType:
    if glue_type.startswith("decimal("):
        precision, scale = glue_type[len("decimal(") : -1].split(",")
        return pa.decimal128(int(precision), int(scale))
    return _ARROW_TYPES[glue_type]


def arrow_table(table: state.StateTable, rows: Rows) -> pa.Table:
    """The rows (the table's columns in order) as Arrow, as pyiceberg hands a scan back."""
    schema = pa.schema([(name, arrow_type(kind)) for name, kind in table.columns])
    return pa.table(
        {name: [row[i] for row in rows] for i, (name, _) in enumerate(table.columns)},
        schema=schema,
    )


class PublishedStates:
    """Publications of hand-written tables for the DuckDB backend, without a store: `read`
    lists the publications made so far (as the publications table's metadata would),
    `load` gives a table's rows at a snapshot (as a pyiceberg scan would). A table whose
    rows did not change keeps its snapshot, as in a merge that does not touch it."""

    def __init__(self) -> None:
        self._tables: dict[int, pa.Table] = {}
        self._rows: dict[str, tuple[Rows, int]] = {}
        self._publications: list[state.Publication] = []
        self._ids = itertools.count(5_000_000_000_000_000_000)
        self.loads: list[tuple[str, int]] = []
        # Set: every load waits until it is set again (a rebuild held half-way).
        self.gate = threading.Event()
        self.gate.set()

    def publish(
        self, rows: Mapping[str, Rows], at: datetime, merged: Mapping[str, str] | None = None
    ) -> state.Publication:
        snapshots: dict[str, int] = {}
        for name, table in state.STATE_TABLES.items():
            if name not in rows:
                continue  # a publication made before the table was added
            kept = self._rows.get(name)
            if kept is not None and list(kept[0]) == list(rows[name]):
                snapshots[name] = kept[1]
                continue
            snapshot = next(self._ids)
            self._tables[snapshot] = arrow_table(table, rows[name])
            self._rows[name] = (rows[name], snapshot)
            snapshots[name] = snapshot
        publication = state.Publication(
            seq=len(self._publications) + 1,
            published_at=at,
            kind=state.KIND_MERGE,
            snapshots=snapshots,
            merged=dict(merged or {}),
        )
        self._publications.append(publication)
        return publication

    def read(self) -> list[state.Publication]:
        return list(self._publications)

    def load(self, table: str, snapshot_id: int) -> pa.Table:
        assert self.gate.wait(60)
        self.loads.append((table, snapshot_id))
        return self._tables[snapshot_id]

    def backend(self, **kwargs: Any) -> DuckDBBackend:
        """A backend on these publications; it checks for new ones on every request unless
        told otherwise, and rebuilds in the foreground."""
        options: dict[str, Any] = {"check_interval_s": 0.0, "background": False, **kwargs}
        return DuckDBBackend(read=self.read, load=self.load, **options)


def write_iceberg_state(endpoint: str, database: str, publications: Sequence[Rows | Any]) -> None:
    """The reference state as real Iceberg tables in a Glue catalog on `endpoint`, written with
    pyiceberg: each publication's tables overwritten in turn, then its publication committed
    to the publications table with the snapshot ids in its summary, as the state job does.
    `publications` holds each publication's rows by table (V1_ROWS, V2_ROWS, ...); a later
    call adds publications after the ones already there."""
    from pyiceberg.catalog import load_catalog  # noqa: PLC0415

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    if database not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=database)
    glue = boto3.client("glue", endpoint_url=endpoint, region_name="us-east-1")
    if database not in {d["Name"] for d in glue.get_databases()["DatabaseList"]}:
        glue.create_database(DatabaseInput={"Name": database})
    catalog = load_catalog(
        database,
        **{
            "type": "glue",
            "glue.endpoint": endpoint,
            "glue.region": "us-east-1",
            "s3.endpoint": endpoint,
            "s3.region": "us-east-1",
        },
    )

    def table_for(name: str, schema: pa.Schema) -> Any:
        identifier = f"{database}.{name}"
        if catalog.table_exists(identifier):
            return catalog.load_table(identifier)
        return catalog.create_table(
            identifier, schema=schema, location=f"s3://{database}/warehouse/{name}"
        )

    first = 1
    if catalog.table_exists(f"{database}.{state.PUBLICATIONS_TABLE}"):
        published = catalog.load_table(f"{database}.{state.PUBLICATIONS_TABLE}")
        first += len(published.metadata.snapshots)
    for seq, rows in enumerate(publications, start=first):
        snapshots: dict[str, int] = {}
        for name, table_def in state.STATE_TABLES.items():
            data = arrow_table(table_def, rows[name])
            table = table_for(name, data.schema)
            table.overwrite(data)
            snapshots[name] = table.current_snapshot().snapshot_id
        publication = state.Publication(
            seq=seq, published_at=datetime.now(UTC), kind=state.KIND_MERGE, snapshots=snapshots
        )
        row = pa.table(
            {"seq": [seq], "kind": [state.KIND_MERGE]},
            schema=pa.schema([("seq", pa.int64()), ("kind", pa.string())]),
        )
        table_for(state.PUBLICATIONS_TABLE, row.schema).append(
            row, snapshot_properties=publication.summary()
        )


def reference_states(*, both: bool = True) -> PublishedStates:
    """Publication 1 (orders-a) and, unless `both` is False, publication 2 (orders-b)."""
    states = PublishedStates()
    states.publish(V1_ROWS, P1_AT)
    if both:
        states.publish(V2_ROWS, P2_AT)
    return states


def spanning_states() -> PublishedStates:
    states = PublishedStates()
    states.publish(SPANNING_ROWS, T_S)
    return states


# --- Servers, clients, events ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def filesystem(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=endpoint.removeprefix("http://"), scheme="http", region="us-east-1"
    )


def api_event(
    path: str,
    method: str = "GET",
    query: dict[str, list[str]] | None = None,
    accept: str = "application/json",
) -> dict[str, Any]:
    """A REST API proxy event shaped like the samples in tests/events."""
    event: dict[str, Any] = copy.deepcopy(json.loads((EVENTS / "api_get_health.json").read_text()))
    event["headers"]["Accept"] = accept
    event["multiValueHeaders"]["Accept"] = [accept]
    event["path"] = path
    event["httpMethod"] = method
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["path"] = f"/prod{path}"
    event["multiValueQueryStringParameters"] = query
    event["queryStringParameters"] = {k: v[-1] for k, v in query.items()} if query else None
    return event


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])
