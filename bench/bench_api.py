"""API benchmark: 1M current lines in a moto S3 server, the API handler over real HTTP on
127.0.0.1, 20 concurrent clients per route; prints requests/s, p50, p99 and the bytes the
Athena backend's queries would scan. Figures are printed, never asserted.

    python -m bench.bench_api [--rows 1000000] [--clients 20] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import random
import re
import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from moto.server import ThreadedMotoServer

from duffbeer import manifest, naming, reports_sql
from duffbeer.contract import CURATED_DATA_COLUMNS, KNOWN_CHANNELS, LINE_KEY
from lambdas.api.backends.duckdb_backend import DEFAULT_CACHE_ENTRIES, DuckDBBackend
from lambdas.api.handler import create_app
from lambdas.api.queries import ReportService

BUCKET = naming.DEFAULT_PROCESSED_BUCKET
BATCH_ID = "bench-orders-000000000000"
RUN_ID = "bench-run-1"
EVENT_TIME = "2026-11-01T00:00:00+00:00"
CHANNELS = (*KNOWN_CHANNELS, "Kiosk")
DAYS = 30
FIRST_DAY = date(2026, 10, 1)
CLIENTS = 1_000
PRODUCTS = 10
LINES_PER_ORDER = 3


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generate_lines(rows: int, seed: int = 7) -> pa.Table:
    """Curated lines as the Glue job writes them: orders of three products, one client, one
    channel and one day each."""
    rng = np.random.default_rng(seed)
    orders = -(-rows // LINES_PER_ORDER)
    order_index = np.repeat(np.arange(orders), LINES_PER_ORDER)[:rows]
    client = rng.integers(1, CLIENTS + 1, orders)[order_index]
    channel = rng.integers(0, len(CHANNELS), orders)[order_index]
    day = rng.integers(0, DAYS, orders)[order_index]
    first_product = rng.integers(0, PRODUCTS, orders)[order_index]
    product = (first_product + np.tile(np.arange(LINES_PER_ORDER), orders)[:rows]) % PRODUCTS
    cents = (np.array([250, 200, 300, 400, 375, 510, 199, 120, 125, 99]))[product]
    millilitres = np.array([330, 500, 250, 1000, 500, 750, 330, 330, 355, 2000])[product]
    units = rng.integers(1, 25, rows)
    status = rng.integers(0, 3, rows)
    price = pa.array(cents / 100).cast(pa.decimal128(12, 2))
    volume = pa.array(millilitres / 1000).cast(pa.decimal128(8, 3))
    quantity = pa.array(units, pa.int32())
    return pa.table(
        {
            "client_id": pa.array(client, pa.int32()),
            "client_name": pc.binary_join_element_wise(
                "Client ", pa.array(client).cast(pa.string()), ""
            ),
            "order_id": pa.array(100_000 + order_index, pa.int32()),
            "product_id": pa.array(100 + product, pa.int32()),
            "product_description": pc.binary_join_element_wise(
                "Duff ", pa.array(product).cast(pa.string()), ""
            ),
            "product_price": price,
            "product_ccf": quantity,
            "product_volume": volume,
            "status": pc.take(pa.array(["created", "delivered", "broken"]), pa.array(status)),
            "line_total": pc.multiply(price, quantity).cast(pa.decimal128(18, 2)),
            "line_volume_l": pc.multiply(volume, quantity).cast(pa.decimal128(18, 3)),
            "batch_id": pa.array([BATCH_ID] * rows),
            "source_event_time": pa.array(
                [datetime.fromisoformat(EVENT_TIME)] * rows, pa.timestamp("us", tz="UTC")
            ),
            "_channel": pc.take(pa.array(CHANNELS), pa.array(channel)),
            "_day": pa.array(day, pa.int32()),
        }
    )


def publish_lines(lines: pa.Table, fs: Any, s3: Any) -> int:
    """Write one Parquet file per channel/day partition and the batch manifest; returns the
    number of files."""
    prefix = naming.run_prefix(BATCH_ID, RUN_ID)
    partitions: list[manifest.Partition] = []
    data = lines.drop_columns(["_channel", "_day"])
    for channel in CHANNELS:
        for day in range(DAYS):
            mask = pc.and_(pc.equal(lines["_channel"], channel), pc.equal(lines["_day"], day))
            part = data.filter(mask)
            if part.num_rows == 0:
                continue
            order_date = (FIRST_DAY + timedelta(days=day)).isoformat()
            location = (
                f"{prefix}{naming.ORDER_LINES_DIR}/point_of_sale_channel={channel}/"
                f"order_date={order_date}/"
            )
            pq.write_table(part, f"{BUCKET}/{location}part-00000.snappy.parquet", filesystem=fs)
            partitions.append(
                {
                    "point_of_sale_channel": channel,
                    "order_date": order_date,
                    "location": location,
                    "rows": part.num_rows,
                }
            )
    outputs: manifest.Outputs = {
        "order_lines": f"{prefix}{naming.ORDER_LINES_DIR}/",
        "reports": {r: f"{prefix}{naming.REPORTS_DIR}/{r}/" for r in naming.BATCH_REPORTS},
        "rejects": f"{prefix}{naming.REJECTS_DIR}/",
    }
    document: manifest.Manifest = {
        "manifest_version": manifest.MANIFEST_VERSION,
        "batch_id": BATCH_ID,
        "run_id": RUN_ID,
        "status": naming.STATUS_SUCCEEDED,
        "error": None,
        "source": {"path": "s3://bench/orders.csv", "size": None, "event_time": EVENT_TIME},
        "ingest_date": EVENT_TIME[:10],
        "started_at": EVENT_TIME,
        "finished_at": EVENT_TIME,
        "timings": {},
        "rows_read": lines.num_rows,
        "rows_valid": lines.num_rows,
        "rows_rejected": 0,
        "rejects_by_reason": {},
        "duplicates": 0,
        "total_sales": "0",
        "total_units": 0,
        "partitions": partitions,
        "outputs": outputs,
        "warnings": [],
        "published": {
            "run_id": RUN_ID,
            "published_at": EVENT_TIME,
            "source_event_time": EVENT_TIME,
            "partitions": partitions,
            "outputs": outputs,
            "rows_valid": lines.num_rows,
            "total_sales": "0",
        },
    }
    s3.put_object(
        Bucket=BUCKET, Key=naming.manifest_key(BATCH_ID), Body=manifest.dumps(document).encode()
    )
    return len(partitions)


class ApiFront:
    """A small HTTP/1.1 front (keep-alive, GET only) turning requests into REST proxy events.

    asyncio handles the connections; the handler runs on a few worker threads, so a DuckDB
    query (which releases the GIL) never stalls the other connections. A Powertools resolver
    holds the event it resolves, so each worker thread has its own; the report service (and
    its DuckDB snapshot) is shared, as in one warm Lambda execution environment.
    """

    def __init__(self, service: ReportService, workers: int = 4) -> None:
        self.service = service
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="api")
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()

    def resolve(self, method: str, target: str) -> tuple[int, bytes]:
        app = getattr(self.local, "app", None)
        if app is None:
            app = self.local.app = create_app(self.service)
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        match = re.fullmatch(r"/orders/([^/]+)", url.path)
        event = {
            "resource": "/orders/{client_id}" if match else url.path,
            "path": url.path,
            "httpMethod": method,
            "headers": {},
            "multiValueHeaders": {},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": {"client_id": match.group(1)} if match else None,
            "requestContext": {"requestId": "bench", "stage": "bench", "httpMethod": method},
            "body": None,
            "isBase64Encoded": False,
        }
        response = app.resolve(event, None)
        return int(response["statusCode"]), str(response["body"]).encode()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request_line := await reader.readline():
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: a GET carries nothing the handler needs here
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                status, payload = await self.loop.run_in_executor(
                    self.pool, self.resolve, method, target
                )
                head = (
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                )
                writer.write(head.encode("latin-1") + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=512)
        )
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        self.loop.run_forever()
        server.close()

    def start(self) -> None:
        threading.Thread(target=self._run, name="api-front", daemon=True).start()
        self._ready.wait()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.pool.shutdown(wait=False)


def _targets(route: str, rng: random.Random) -> str:
    if route == "orders":
        return f"/orders/{rng.randint(1, CLIENTS)}"
    if route == "orders+list":
        return f"/orders/{rng.randint(1, CLIENTS)}?include=orders&limit=20"
    filters: list[str] = []
    if rng.random() < 0.5:
        filters.append(f"channel={rng.choice(CHANNELS)}")
    if rng.random() < 0.5:
        start = rng.randrange(DAYS)
        end = min(DAYS - 1, start + rng.randrange(1, 15))
        first, last = FIRST_DAY + timedelta(days=start), FIRST_DAY + timedelta(days=end)
        filters += [f"date_from={first.isoformat()}", f"date_to={last.isoformat()}"]
    path = "/sales-by-product" if route == "sales-by-product" else "/order-status-report"
    if route == "health":
        return "/health"
    return path + ("?" + "&".join(filters) if filters else "")


async def _client(
    port: int, route: str, until: float, seed: int, out: list[float], errors: list[int]
) -> None:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < until:
        request = f"GET {_targets(route, rng)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        started = time.perf_counter()
        writer.write(request.encode())
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        out.append(time.perf_counter() - started)
        if status != 200:
            errors.append(status)
    writer.close()


def run_clients(port: int, route: str, clients: int, seconds: float, queue: Any) -> None:
    """Closed-loop clients (each sends its next request when the previous one is answered),
    in their own process so that they do not share the server's GIL."""

    async def all_clients() -> tuple[list[float], list[int]]:
        until = time.perf_counter() + seconds
        latencies: list[float] = []
        errors: list[int] = []
        await asyncio.gather(
            *(_client(port, route, until, i, latencies, errors) for i in range(clients))
        )
        return latencies, errors

    queue.put(asyncio.run(all_clients()))


def load(port: int, route: str, clients: int, seconds: float) -> tuple[list[float], list[int]]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=run_clients, args=(port, route, clients, seconds, queue))
    process.start()
    latencies, errors = queue.get()
    process.join()
    return latencies, errors


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def athena_scan_bytes(fs: Any, paths: Sequence[str]) -> dict[str, int]:
    """Per API relation, the compressed bytes of the order_lines columns its Athena query
    reads. The current-state window needs every version of a line, so no partition is
    pruned: every file counts, but only the columns the query names (and the window's)."""
    window_columns = {*LINE_KEY, "source_event_time", "batch_id"}
    chunk_bytes: dict[str, int] = {}
    for path in paths:
        metadata = pq.ParquetFile(path, filesystem=fs).metadata
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                name = chunk.path_in_schema
                chunk_bytes[name] = chunk_bytes.get(name, 0) + chunk.total_compressed_size
    result = {"all data columns": sum(chunk_bytes.values())}
    for relation, sql in reports_sql.API_RELATIONS.items():
        used = {
            name for name, _ in CURATED_DATA_COLUMNS if re.search(rf"\b{name}\b", sql)
        } | window_columns
        result[relation] = sum(chunk_bytes.get(name, 0) for name in used)
    return result


ROUTE_RELATIONS = {
    "orders": reports_sql.API_CLIENT_REPORT,
    "orders+list": f"{reports_sql.API_CLIENT_REPORT} + {reports_sql.API_CLIENT_ORDERS}",
    "sales-by-product": reports_sql.API_PRODUCT_DAILY,
    "order-status-report": reports_sql.API_STATUS_ORDERS,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--routes", default="orders,orders+list,sales-by-product,order-status-report"
    )
    parser.add_argument(
        "--cache-entries",
        type=int,
        default=DEFAULT_CACHE_ENTRIES,
        help="answers kept per snapshot by the DuckDB backend (0: every request queries)",
    )
    ns = parser.parse_args(argv)
    # moto's server logs every request it serves.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    front: ApiFront | None = None
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket=BUCKET)
        fs = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            region="us-east-1",
            access_key="bench",
            secret_key="bench",
        )
        started = time.perf_counter()
        lines = generate_lines(ns.rows)
        files = publish_lines(lines, fs, s3)
        print(
            f"api bench: {ns.rows} lines in {files} Parquet files, one published batch "
            f"({time.perf_counter() - started:.1f} s to generate and upload)"
        )
        backend = DuckDBBackend(
            bucket=BUCKET,
            check_interval_s=5.0,
            s3_client=s3,
            filesystem=fs,
            cache_entries=ns.cache_entries,
        )
        started = time.perf_counter()
        backend.refresh()
        print(
            f"  cold snapshot (read Parquet, current state, API relations): "
            f"{time.perf_counter() - started:.2f} s"
        )
        front = ApiFront(ReportService(backend))
        front.start()
        print(
            f"  {ns.clients} clients x {ns.seconds:g} s per route, HTTP on 127.0.0.1 "
            "(random client ids; random channel/date filters)"
        )
        print(f"  answers cached per snapshot: {ns.cache_entries}")
        print(
            f"  {'route':<22}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
            f"{'cache hits':>12}"
        )
        for route in ns.routes.split(","):
            load(front.port, route, ns.clients, min(2.0, ns.seconds))  # warm-up
            before = backend.status()["snapshot"]
            latencies, errors = load(front.port, route, ns.clients, ns.seconds)
            after = backend.status()["snapshot"]
            hits = after["cache_hits"] - before["cache_hits"]
            misses = after["cache_misses"] - before["cache_misses"]
            latencies.sort()
            print(
                f"  {route:<22}{len(latencies) / ns.seconds:>12.0f}"
                f"{statistics.median(latencies) * 1000:>9.1f}"
                f"{percentile(latencies, 0.99) * 1000:>9.1f}{len(errors):>8}"
                f"{hits / max(1, hits + misses):>12.0%}"
            )
        paths = [
            f"{BUCKET}/{info.path.split('/', 1)[1]}"
            for info in fs.get_file_info(
                pafs.FileSelector(f"{BUCKET}/{naming.RUNS_PREFIX}", recursive=True)
            )
            if info.path.endswith(".parquet")
        ]
        scanned = athena_scan_bytes(fs, paths)
        print(
            "  Athena bytes scanned per query (compressed column chunks; no partition pruning "
            "through the current-state window):"
        )
        print(f"    {'all data columns':<56}{scanned['all data columns'] / 1e6:>10.2f} MB")
        for route, relation in ROUTE_RELATIONS.items():
            total = sum(scanned[name] for name in relation.split(" + "))
            print(f"    {route + ' (' + relation + ')':<56}{total / 1e6:>10.2f} MB")
        print(json.dumps({"snapshot": backend.status()["snapshot"]}, default=str))
    finally:
        if front is not None:
            front.stop()
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
