"""Shared pieces of the API tests: a moto server, a hand-written published dataset, events."""
# ruff: noqa: E501  (the hand-written rows read best one line each)

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from duffbeer import manifest, naming

EVENTS = Path(__file__).resolve().parents[1] / "events"
BUCKET = "duffbeer-processed-orders"

LINE_SCHEMA = pa.schema(
    [
        ("client_id", pa.int32()),
        ("client_name", pa.string()),
        ("order_id", pa.int32()),
        ("product_id", pa.int32()),
        ("product_description", pa.string()),
        ("product_price", pa.decimal128(12, 2)),
        ("product_ccf", pa.int32()),
        ("product_volume", pa.decimal128(8, 3)),
        ("status", pa.string()),
        ("line_total", pa.decimal128(18, 2)),
        ("line_volume_l", pa.decimal128(18, 3)),
        ("batch_id", pa.string()),
        ("source_event_time", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Line:
    client_id: int
    client_name: str
    order_id: int
    product_id: int
    description: str
    price: str
    ccf: int
    volume: str
    channel: str
    status: str
    order_date: str


# Batch A: the first file (S3 event time 2026-01-01 10:00).
BATCH_A = [
    Line(1001, "Moe's Tavern", 5678, 102, "Duff Classic", "2.50", 6, "0.330", "Retail", "created", "2026-01-10"),
    Line(1001, "Moe's Tavern", 5678, 103, "Duff Lite", "2.00", 12, "0.500", "Retail", "created", "2026-01-10"),
    Line(1002, "Kwik-E-Mart", 5679, 103, "Duff Lite", "2.00", 10, "0.500", "B2B", "delivered", "2026-01-11"),
    Line(1003, "Krusty Burger", 5680, 104, "Duff Dry", "3.00", 8, "0.250", "Online", "broken", "2026-01-11"),
    Line(1001, "Moe's Tavern", 5690, 102, "Duff Classic", "2.50", 4, "0.330", "Online", "delivered", "2026-01-12"),
]
# Batch B, published run (event time 2026-01-02 09:00): line (5678, 102) is now delivered.
BATCH_B = [
    Line(1001, "Moe's Tavern", 5678, 102, "Duff Classic", "2.50", 6, "0.330", "Retail", "delivered", "2026-01-10"),
    Line(1004, "Springfield Mall", 5700, 105, "Duff Special", "4.00", 24, "1.000", "Retail", "created", "2026-01-12"),
]
# Batch B's superseded run, still on S3 but no longer published: must stay invisible.
BATCH_B_OLD_RUN = [
    Line(1001, "Moe's Tavern", 5678, 102, "Duff Classic", "2.50", 6, "0.330", "Retail", "broken", "2026-01-10"),
    Line(1006, "Android's Dungeon", 5999, 102, "Duff Classic", "2.50", 50, "0.330", "Retail", "created", "2026-01-12"),
]
# Batch C: its only run failed, nothing published: must stay invisible.
BATCH_C = [
    Line(1005, "Lard Lad Donuts", 5800, 102, "Duff Classic", "2.50", 100, "0.330", "Retail", "created", "2026-01-12"),
]


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


def write_run(
    endpoint: str, bucket: str, batch_id: str, run_id: str, event_time: str, lines: list[Line]
) -> list[manifest.Partition]:
    """Write one run's lines as the Glue job does: hive partitions, one Parquet file each."""
    fs = filesystem(endpoint)
    stamp = datetime.fromisoformat(event_time.replace("Z", "+00:00")).astimezone(UTC)
    partitions: list[manifest.Partition] = []
    cells = sorted({(ln.channel, ln.order_date) for ln in lines})
    for channel, order_date in cells:
        rows = [ln for ln in lines if (ln.channel, ln.order_date) == (channel, order_date)]
        location = (
            f"{naming.run_prefix(batch_id, run_id)}{naming.ORDER_LINES_DIR}/"
            f"point_of_sale_channel={channel}/order_date={order_date}/"
        )
        table = pa.table(
            {
                "client_id": [r.client_id for r in rows],
                "client_name": [r.client_name for r in rows],
                "order_id": [r.order_id for r in rows],
                "product_id": [r.product_id for r in rows],
                "product_description": [r.description for r in rows],
                "product_price": [Decimal(r.price) for r in rows],
                "product_ccf": [r.ccf for r in rows],
                "product_volume": [Decimal(r.volume) for r in rows],
                "status": [r.status for r in rows],
                "line_total": [Decimal(r.price) * r.ccf for r in rows],
                "line_volume_l": [Decimal(r.volume) * r.ccf for r in rows],
                "batch_id": [batch_id] * len(rows),
                "source_event_time": [stamp] * len(rows),
            },
            schema=LINE_SCHEMA,
        )
        pq.write_table(table, f"{bucket}/{location}part-00000.snappy.parquet", filesystem=fs)
        partitions.append(
            {
                "point_of_sale_channel": channel,
                "order_date": order_date,
                "location": location,
                "rows": len(rows),
            }
        )
    s3_client(endpoint).put_object(
        Bucket=bucket,
        Key=f"{naming.run_prefix(batch_id, run_id)}{naming.ORDER_LINES_DIR}/_SUCCESS",
        Body=b"",
    )
    return partitions


def publish(
    endpoint: str,
    bucket: str,
    batch_id: str,
    run_id: str,
    event_time: str,
    partitions: list[manifest.Partition] | None,
) -> None:
    """Write manifests/<batch_id>.json; `partitions=None` stands for a failed first run."""
    prefix = naming.run_prefix(batch_id, run_id)
    outputs: manifest.Outputs = {
        "order_lines": f"{prefix}{naming.ORDER_LINES_DIR}/",
        "reports": {r: f"{prefix}{naming.REPORTS_DIR}/{r}/" for r in naming.BATCH_REPORTS},
        "rejects": f"{prefix}{naming.REJECTS_DIR}/",
    }
    published: manifest.Published | None = None
    if partitions is not None:
        published = {
            "run_id": run_id,
            "published_at": event_time,
            "source_event_time": event_time,
            "partitions": partitions,
            "outputs": outputs,
            "rows_valid": sum(p["rows"] for p in partitions),
            "total_sales": "0.00",
        }
    document: manifest.Manifest = {
        "manifest_version": manifest.MANIFEST_VERSION,
        "batch_id": batch_id,
        "run_id": run_id,
        "status": naming.STATUS_SUCCEEDED if partitions is not None else naming.STATUS_FAILED,
        "error": None,
        "source": {"path": f"s3://input/{batch_id}.csv", "size": 1, "event_time": event_time},
        "ingest_date": event_time[:10],
        "started_at": event_time,
        "finished_at": event_time,
        "timings": {},
        "rows_read": 0,
        "rows_valid": 0,
        "rows_rejected": 0,
        "rejects_by_reason": {},
        "duplicates": 0,
        "total_sales": "0.00",
        "total_units": 0,
        "partitions": partitions or [],
        "outputs": outputs,
        "warnings": [],
        "published": published,
    }
    s3_client(endpoint).put_object(
        Bucket=bucket, Key=naming.manifest_key(batch_id), Body=manifest.dumps(document).encode()
    )


def write_reference_dataset(endpoint: str, bucket: str = BUCKET) -> None:
    """Batches A and B published (B later), B's older run and batch C unpublished."""
    s3_client(endpoint).create_bucket(Bucket=bucket)
    a = write_run(endpoint, bucket, "orders-a", "run-a1", "2026-01-01T10:00:00Z", BATCH_A)
    publish(endpoint, bucket, "orders-a", "run-a1", "2026-01-01T10:00:00Z", a)
    write_run(endpoint, bucket, "orders-b", "run-b0", "2026-01-02T09:00:00Z", BATCH_B_OLD_RUN)
    b = write_run(endpoint, bucket, "orders-b", "run-b1", "2026-01-02T09:00:00Z", BATCH_B)
    publish(endpoint, bucket, "orders-b", "run-b1", "2026-01-02T09:00:00Z", b)
    write_run(endpoint, bucket, "orders-c", "run-c1", "2026-01-03T08:00:00Z", BATCH_C)
    publish(endpoint, bucket, "orders-c", "run-c1", "2026-01-03T08:00:00Z", None)


def api_event(
    path: str, method: str = "GET", query: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """A REST API proxy event shaped like the samples in tests/events."""
    event: dict[str, Any] = copy.deepcopy(
        json.loads((EVENTS / "api_get_health.json").read_text())
    )
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
