"""API benchmark: the handler over real HTTP on 127.0.0.1 against Iceberg state histories built
by the real merge job, 20 concurrent clients per route; prints requests/s, p50 and p99 after 1
and after 10 batches (and their p50 ratio), and the bytes Athena would scan per request.
Figures are printed, never asserted.

    python -m bench.bench_api [--lines-per-batch 100000] [--latency-batches 1,10]
                              [--scan-histories 10x100000,10x1000000] [--clients 20]
                              [--seconds 30] [--routes orders,top-clients] [--cache-entries 0]
                              [--driver-memory 4g] [--work-dir build/bench/api] [--rebuild]

A history of N batches is N batches of bench.state_data, each merged into the Iceberg state
by its own spark-submit of glue_jobs/maintain_state.py (bench.bench_state's command), on a
local-disk warehouse registered in a moto Glue catalog on 127.0.0.1. It is kept under
--work-dir (history-<N>x<lines>-...) with a ready file naming its tables' metadata files, and
reused by later runs. To serve it, a fresh moto catalog registers that metadata, the DuckDB
backend loads the latest publication with pyiceberg, and ReportService answers behind a small
HTTP front. The Athena scan of a route is measured on the same publication: pyiceberg plans
the files each of its queries reads (partition and file-statistics pruning on the query's
client, channel and date filters), and the compressed column chunks of the columns the query
names in those files are summed, delete files included; by default on the latency histories,
`--scan-histories` adds others (built the same way; 1M and 10M line versions take long).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import random
import re
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pyarrow.compute as pc
import pyarrow.parquet as pq
from aws_lambda_powertools.utilities.typing import LambdaContext
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    LessThanOrEqual,
)
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile, FileFormat
from pyiceberg.table import FileScanTask

from bench.bench_state import (
    DATABASE,
    REGION,
    BenchCatalog,
    bench_catalog,
    run_merge,
    spark_submit_command,
)
from bench.state_data import History
from duffbeer import reports_sql, state
from duffbeer.state import Publication
from lambdas.api import overview
from lambdas.api.backends.duckdb_backend import DuckDBBackend, iceberg_loader
from lambdas.api.handler import create_app
from lambdas.api.queries import ReportService

ROOT = Path(__file__).resolve().parents[1]
READY = "bench-api-ready.json"
ROUTES = (
    "orders",
    "orders+list",
    "sales-by-product",
    "order-status-report",
    "daily-sales",
    "top-clients",
)
UPDATE_SHARE = 0.5
SEED = 1
# Client ids the load draws from (a sample of the state's clients).
MAX_CLIENT_SAMPLE = 5_000
# A client's scan depends on its bucket's files: the largest over this many clients is printed.
SCAN_CLIENTS = 8
SCAN_DAYS = 14
# orders+list asks for 20 orders; the service reads one more to tell whether a page follows.
ORDERS_PAGE = 20


# --- The histories -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltHistory:
    """An Iceberg state built from `batches` batches of `lines_per_batch` lines, and the
    metadata file of each of its tables after the last merge."""

    root: Path
    batches: int
    lines_per_batch: int
    current_lines: int
    metadata: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.batches} x {self.lines_per_batch:,} lines"

    @property
    def description(self) -> str:
        return (
            f"{self.label} ({self.batches * self.lines_per_batch:,} line versions, "
            f"{self.current_lines:,} current lines)"
        )


def history_root(work_dir: Path, batches: int, lines_per_batch: int) -> Path:
    return work_dir / f"history-{batches}x{lines_per_batch}-u{UPDATE_SHARE}-s{SEED}"


def ensure_history(
    work_dir: Path, batches: int, lines_per_batch: int, *, rebuild: bool, driver_memory: str
) -> BuiltHistory:
    """The history under `work_dir`, built by the merge job unless its ready file is there."""
    root = history_root(work_dir, batches, lines_per_batch)
    ready = root / READY
    if ready.exists() and not rebuild:
        facts = json.loads(ready.read_text())
        return BuiltHistory(
            root, batches, lines_per_batch, facts["current_lines"], facts["metadata"]
        )
    shutil.rmtree(root, ignore_errors=True)
    (root / "logs").mkdir(parents=True)
    generator = History(root, seed=SEED)
    merge_seconds: list[float] = []
    started = time.monotonic()
    with bench_catalog(root / "warehouse") as catalog:
        for _ in range(batches):
            batch = generator.next_batch(lines_per_batch, UPDATE_SHARE)
            command = spark_submit_command(
                root,
                catalog.spark_conf(),
                batch["batch_id"],
                f"bench-api-{batch['batch']}",
                driver_memory,
            )
            merged = run_merge(command, root / "logs" / f"merge-{batch['batch']:04d}.log")
            merge_seconds.append(round(merged["seconds"], 1))
            print(
                f"    batch {batch['batch']}/{batches} ({batch['lines']:,} lines, "
                f"{batch['updates']:,} updates) merged in {merged['seconds']:.0f} s",
                flush=True,
            )
        metadata = catalog.metadata_locations()
    # Every key of the generator is a distinct line key: those are the current lines.
    current_lines = len(generator.lines.order_id)
    facts = {
        "batches": batches,
        "lines_per_batch": lines_per_batch,
        "current_lines": current_lines,
        "merge_seconds": merge_seconds,
        "metadata": metadata,
    }
    # Written last: a build that failed half-way is never taken for a ready one.
    ready.write_text(json.dumps(facts, indent=2))
    history = BuiltHistory(root, batches, lines_per_batch, current_lines, metadata)
    print(f"  built {history.description} in {time.monotonic() - started:.0f} s: {root}")
    return history


def catalog_publications(catalog: Catalog, database: str) -> list[Publication]:
    """The publications, from the publications table's snapshot summaries (read with
    pyiceberg: lambdas.api.publications reads the metadata file from S3, and the bench's
    warehouse is on local disk)."""
    table = catalog.load_table(f"{database}.{state.PUBLICATIONS_TABLE}")
    return state.publications(
        state.SnapshotInfo(
            s.snapshot_id,
            s.timestamp_ms,
            dict(s.summary.additional_properties) if s.summary else {},
        )
        for s in table.metadata.snapshots
    )


# --- What the load asks for ------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpace:
    """The values the clients draw from: clients, channels and days present in the state."""

    client_ids: tuple[int, ...]
    channels: tuple[str, ...]
    first_day: date
    days: int


def target_space(catalog: Catalog, database: str, publication: Publication) -> TargetSpace:
    """The clients (a sample of at most MAX_CLIENT_SAMPLE), channels and days of the
    publication's report tables."""

    def read(table: str, *columns: str) -> Any:
        loaded = catalog.load_table(f"{database}.{table}")
        scan = loaded.scan(snapshot_id=publication.snapshots[table], selected_fields=columns)
        return scan.to_arrow()

    clients = read(state.CLIENT_REPORT_TABLE, "client_id")
    cells = read(state.STATUS_DAILY_TABLE, "point_of_sale_channel", "order_date")
    client_ids = sorted(c for c in pc.unique(clients["client_id"]).to_pylist() if c is not None)
    channels = sorted(
        c for c in pc.unique(cells["point_of_sale_channel"]).to_pylist() if c is not None
    )
    days = [d for d in pc.unique(cells["order_date"]).to_pylist() if d is not None]
    sample = sorted(random.Random(SEED).sample(client_ids, min(len(client_ids), MAX_CLIENT_SAMPLE)))
    first, last = (min(days), max(days)) if days else (date(2026, 1, 1), date(2026, 1, 1))
    return TargetSpace(tuple(sample), tuple(channels), first, (last - first).days + 1)


def _targets(route: str, rng: random.Random, space: TargetSpace) -> str:
    if route == "health":
        return "/health"
    if route == "orders":
        return f"/orders/{rng.choice(space.client_ids)}"
    if route == "orders+list":
        return f"/orders/{rng.choice(space.client_ids)}?include=orders&limit={ORDERS_PAGE}"
    filters: list[str] = []
    if rng.random() < 0.5 and space.channels:
        filters.append(f"channel={rng.choice(space.channels)}")
    if rng.random() < 0.5:
        start = rng.randrange(space.days)
        end = min(space.days - 1, start + rng.randrange(1, 15))
        first = space.first_day + timedelta(days=start)
        last = space.first_day + timedelta(days=end)
        filters += [f"date_from={first.isoformat()}", f"date_to={last.isoformat()}"]
    return "/" + route + ("?" + "&".join(filters) if filters else "")


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
        self._thread = threading.Thread(target=self._run, name="api-front", daemon=True)

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
        # The routes never read the Lambda context.
        response = app.resolve(event, cast(LambdaContext, None))
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
        # Connections still open end while the loop runs: their tasks must not outlive it.
        open_connections = asyncio.all_tasks(self.loop)
        for task in open_connections:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*open_connections, return_exceptions=True))
        self.loop.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.pool.shutdown(wait=False)


async def _client(
    port: int,
    route: str,
    space: TargetSpace,
    until: float,
    seed: int,
    out: list[float],
    errors: list[int],
) -> None:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < until:
        request = f"GET {_targets(route, rng, space)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
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


def run_clients(
    port: int, route: str, space: TargetSpace, clients: int, seconds: float, queue: Any
) -> None:
    """Closed-loop clients (each sends its next request when the previous one is answered),
    in their own process so that they do not share the server's GIL."""

    async def all_clients() -> tuple[list[float], list[int]]:
        until = time.perf_counter() + seconds
        latencies: list[float] = []
        errors: list[int] = []
        await asyncio.gather(
            *(_client(port, route, space, until, i, latencies, errors) for i in range(clients))
        )
        return latencies, errors

    queue.put(asyncio.run(all_clients()))


def load(
    port: int, route: str, space: TargetSpace, clients: int, seconds: float
) -> tuple[list[float], list[int]]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=run_clients, args=(port, route, space, clients, seconds, queue)
    )
    process.start()
    latencies, errors = queue.get()
    process.join()
    return latencies, errors


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


# --- Bytes Athena would scan -------------------------------------------------------------------


@dataclass(frozen=True)
class ScanTarget:
    """What one request of each route asks for: a client, and the report filters (None: no
    filter)."""

    client_id: int
    channel: str | None = None
    date_from: date | None = None
    date_to: date | None = None


# The queries of one request per route (a filter's columns are read too).
ROUTE_QUERIES: dict[str, Callable[[ScanTarget], list[reports_sql.BoundQuery]]] = {
    "orders": lambda t: [reports_sql.client_report_query(t.client_id)],
    "orders+list": lambda t: [
        reports_sql.client_report_query(t.client_id),
        reports_sql.client_orders_query(t.client_id, 0, ORDERS_PAGE + 1),
    ],
    "sales-by-product": lambda t: [
        reports_sql.sales_by_product_query(t.channel, t.date_from, t.date_to)
    ],
    "order-status-report": lambda t: [
        reports_sql.order_status_query(t.channel, t.date_from, t.date_to)
    ],
    "daily-sales": lambda t: [reports_sql.daily_sales_query(t.channel, t.date_from, t.date_to)],
    "top-clients": lambda t: [
        reports_sql.top_clients_query(
            t.channel, None, overview.DEFAULT_TOP_CLIENTS, t.date_from, t.date_to
        )
    ],
}

# A table placeholder of the query text, with its alias when it has one (aliases are lower
# case, keywords upper case).
_TABLE_REFERENCE = re.compile(
    r"\{(" + "|".join(sorted(state.STATE_TABLES)) + r")\}(?:[ \t]+([a-z_][a-z0-9_]*)\b)?"
)
# The filters Iceberg planning prunes files with (partitions, then each file's min/max
# statistics): the fragment, its column, and the predicate it makes of the bound value.
_PRUNING_FILTERS: tuple[tuple[str, str, Callable[..., BooleanExpression]], ...] = (
    ("client_id = ?", "client_id", EqualTo),
    (reports_sql.FILTER_CHANNEL, "point_of_sale_channel", EqualTo),
    (reports_sql.FILTER_DATE_FROM, "order_date", GreaterThanOrEqual),
    (reports_sql.FILTER_DATE_TO, "order_date", LessThanOrEqual),
)


@dataclass(frozen=True)
class TableRead:
    """One table reference of a query: the columns it reads, and the filter its files are
    planned with."""

    table: str
    columns: frozenset[str]
    row_filter: BooleanExpression


def table_reads(query: reports_sql.BoundQuery) -> list[TableRead]:
    """Every table reference of the query (a self-join reads its table once per side)."""
    reads = []
    for reference in _TABLE_REFERENCE.finditer(query.sql):
        table, alias = state.STATE_TABLES[reference.group(1)], reference.group(2)
        if alias:
            named = set(re.findall(rf"\b{alias}\.(\w+)", query.sql))
        else:
            named = {c for c in table.column_names if re.search(rf"\b{c}\b", query.sql)}
        columns = frozenset(c for c in table.column_names if c in named)
        reads.append(TableRead(table.name, columns, pruning_filter(query, alias)))
    return reads


def pruning_filter(query: reports_sql.BoundQuery, alias: str | None) -> BooleanExpression:
    """The client, channel and date filters of the query that bind this reference (its
    alias's, or unqualified ones), with their bound values."""
    predicates: list[BooleanExpression] = []
    for fragment, column, predicate in _PRUNING_FILTERS:
        for found in re.finditer(r"(?<![\w.])(?:(\w+)\.)?" + re.escape(fragment), query.sql):
            if found.group(1) not in (None, alias):
                continue
            # The fragment's marker binds the value after those of the markers before it.
            value = query.params[query.sql.count("?", 0, found.start())]
            predicates.append(
                predicate(column, value.isoformat() if isinstance(value, date) else value)
            )
            break  # the order status query repeats its filter, once per branch
    if len(predicates) > 1:
        return And(*predicates)
    return predicates[0] if predicates else AlwaysTrue()


class ScanMeter:
    """Bytes Athena would scan for queries over one publication of the state: the compressed
    column chunks of the columns read, in the files Iceberg plans after pruning. A file is
    counted whole (its row groups' statistics might skip some; the state's files are small)."""

    def __init__(self, catalog: Catalog, database: str, publication: Publication) -> None:
        self.catalog = catalog
        self.database = database
        self.publication = publication
        self._chunk_bytes: dict[str, dict[str, int]] = {}

    def chunk_bytes(self, io: FileIO, path: str) -> dict[str, int]:
        """Compressed bytes per column of a Parquet file (read once per path)."""
        sizes = self._chunk_bytes.get(path)
        if sizes is None:
            with io.new_input(path).open() as stream:
                metadata = pq.ParquetFile(stream).metadata
            sizes = {}
            for g in range(metadata.num_row_groups):
                group = metadata.row_group(g)
                for c in range(group.num_columns):
                    chunk = group.column(c)
                    name = chunk.path_in_schema
                    sizes[name] = sizes.get(name, 0) + chunk.total_compressed_size
            self._chunk_bytes[path] = sizes
        return sizes

    def tasks_bytes(
        self, io: FileIO, tasks: Iterable[FileScanTask], columns: frozenset[str]
    ) -> int:
        """The named columns' chunks of every data file, and every delete file once, whole:
        each split reads the position deletes of its own file, which are sorted by file."""
        total = 0
        deletes: dict[str, DataFile] = {}
        for task in tasks:
            sizes = self.chunk_bytes(io, task.file.file_path)
            total += sum(size for name, size in sizes.items() if name in columns)
            deletes.update((d.file_path, d) for d in task.delete_files)
        for path, delete in sorted(deletes.items()):
            if delete.file_format == FileFormat.PARQUET:
                total += sum(self.chunk_bytes(io, path).values())
            else:
                total += delete.file_size_in_bytes  # a deletion vector is read whole
        return total

    def read_bytes(self, read: TableRead) -> int:
        table = self.catalog.load_table(f"{self.database}.{read.table}")
        scan = table.scan(
            snapshot_id=self.publication.snapshots[read.table], row_filter=read.row_filter
        )
        return self.tasks_bytes(table.io, scan.plan_files(), read.columns)

    def request_bytes(self, queries: Sequence[reports_sql.BoundQuery]) -> int:
        return sum(self.read_bytes(read) for query in queries for read in table_reads(query))


def athena_scan_bytes(
    catalog: Catalog, database: str, publication: Publication, targets: Sequence[ScanTarget]
) -> dict[str, int]:
    """Per route, the most bytes one of its requests for the targets would scan."""
    meter = ScanMeter(catalog, database, publication)
    return {
        route: max(meter.request_bytes(queries(target)) for target in targets)
        for route, queries in ROUTE_QUERIES.items()
    }


def scan_targets(space: TargetSpace) -> dict[str, list[ScanTarget]]:
    """The requests whose scan is printed: a few clients, with one channel and SCAN_DAYS days
    (the client routes take no filter), and without any filter."""
    clients = random.Random(SEED).sample(space.client_ids, min(SCAN_CLIENTS, len(space.client_ids)))
    channel = "Retail" if "Retail" in space.channels else (space.channels or (None,))[0]
    last = space.first_day + timedelta(days=min(space.days, SCAN_DAYS) - 1)
    return {
        f"1 channel, {SCAN_DAYS} days": [
            ScanTarget(c, channel, space.first_day, last) for c in clients
        ],
        "no filter": [ScanTarget(c) for c in clients],
    }


@dataclass(frozen=True)
class ScanReport:
    history: BuiltHistory
    publication: int
    bytes_by_targets: dict[str, dict[str, int]]


def measure_scan(catalog: BenchCatalog, history: BuiltHistory) -> ScanReport:
    """The Athena scan of every route over the latest publication of the history registered
    in the catalog."""
    publication = catalog_publications(catalog.catalog, DATABASE)[-1]
    space = target_space(catalog.catalog, DATABASE, publication)
    return ScanReport(
        history,
        publication.seq,
        {
            kind: athena_scan_bytes(catalog.catalog, DATABASE, publication, targets)
            for kind, targets in scan_targets(space).items()
        },
    )


def print_scan(report: ScanReport) -> None:
    kinds = list(report.bytes_by_targets)
    print(f"\n    {report.history.description}, publication {report.publication}:")
    print(f"      {'route':<22}" + "".join(f"{kind:>22}" for kind in kinds))
    for route in ROUTE_QUERIES:
        sizes = (report.bytes_by_targets[kind][route] / 1e6 for kind in kinds)
        print(f"      {route:<22}" + "".join(f"{size:>19.3f} MB" for size in sizes))


# --- The run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    hit_rate: float


def serve(
    history: BuiltHistory, ns: argparse.Namespace
) -> tuple[dict[str, RouteResult], ScanReport]:
    """Register the history in a moto catalog, load its latest publication into the DuckDB
    backend, run the clients against every route; and measure the Athena scan on it."""
    with bench_catalog(history.root / "warehouse") as catalog:
        catalog.register(history.metadata)
        backend = DuckDBBackend(
            read=lambda: catalog_publications(catalog.catalog, DATABASE),
            load=iceberg_loader(DATABASE, catalog.endpoint, REGION),
            check_interval_s=3600.0,  # one publication: never look for another during the load
            cache_entries=ns.cache_entries,
        )
        started = time.perf_counter()
        backend.refresh()
        loaded = time.perf_counter() - started
        # The latest publication: the one refresh() loaded.
        publication = backend.publications.last[-1]
        rows = backend.status()["snapshot"]["rows"]
        print(
            f"\n  history {history.description}: publication {publication.seq} "
            f"loaded in {loaded:.2f} s; rows: {json.dumps(rows)}"
        )
        space = target_space(catalog.catalog, DATABASE, publication)
        # The service answers once outside the load: a route that errors shows here.
        ReportService(backend).client_report(space.client_ids[0])
        results = run_routes(backend, space, ns)
        return results, measure_scan(catalog, history)


def run_routes(
    backend: DuckDBBackend, space: TargetSpace, ns: argparse.Namespace
) -> dict[str, RouteResult]:
    front = ApiFront(ReportService(backend))
    front.start()
    results: dict[str, RouteResult] = {}
    try:
        print(
            f"    {'route':<22}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
            f"{'cache hits':>12}"
        )
        for route in ns.routes.split(","):
            load(front.port, route, space, ns.clients, min(2.0, ns.seconds))  # warm-up
            before = backend.status()["snapshot"]
            latencies, errors = load(front.port, route, space, ns.clients, ns.seconds)
            after = backend.status()["snapshot"]
            hits = after["cache_hits"] - before["cache_hits"]
            misses = after["cache_misses"] - before["cache_misses"]
            latencies.sort()
            result = RouteResult(
                requests_per_s=len(latencies) / ns.seconds,
                p50_ms=statistics.median(latencies) * 1000,
                p99_ms=percentile(latencies, 0.99) * 1000,
                errors=len(errors),
                hit_rate=hits / max(1, hits + misses),
            )
            results[route] = result
            print(
                f"    {route:<22}{result.requests_per_s:>12.0f}{result.p50_ms:>9.1f}"
                f"{result.p99_ms:>9.1f}{result.errors:>8}{result.hit_rate:>12.0%}",
                flush=True,
            )
    finally:
        front.stop()
    return results


def parse_histories(text: str) -> list[tuple[int, int]]:
    """`10x100000,10x1000000` -> [(10, 100000), (10, 1000000)] (batches, lines per batch)."""
    histories = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        batches, sep, lines = part.lower().partition("x")
        if not sep or not batches.isdigit() or not lines.isdigit():
            raise argparse.ArgumentTypeError(f"{part!r} is not BATCHESxLINES")
        histories.append((int(batches), int(lines)))
    return histories


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines-per-batch", type=int, default=100_000)
    parser.add_argument(
        "--latency-batches", default="1,10", help="histories whose latencies are compared"
    )
    parser.add_argument(
        "--scan-histories",
        type=parse_histories,
        default=[],
        help="more histories (BATCHESxLINES,...) whose Athena scan alone is measured, e.g. "
        "10x100000,10x1000000 for 1M and 10M line versions (long to build)",
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument(
        "--cache-entries",
        type=int,
        default=0,
        help="answers kept per snapshot by the DuckDB backend (default 0: every request "
        "queries; the backend's own default is 20000)",
    )
    parser.add_argument("--driver-memory", default="4g", help="of each merge's spark-submit")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "bench" / "api")
    parser.add_argument("--rebuild", action="store_true", help="build the histories again")
    ns = parser.parse_args(argv)
    # moto's server logs every request it serves.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # The backend's pyiceberg catalog takes its credentials from the environment; moto
    # accepts any.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    print(
        f"api bench: the latest publication of Iceberg state histories built by "
        f"glue_jobs/maintain_state.py (update share {UPDATE_SHARE}, seed {SEED}), served "
        f"by the DuckDB backend through a moto Glue catalog"
    )
    latency_sizes = [(int(b), ns.lines_per_batch) for b in ns.latency_batches.split(",")]
    scan_sizes = [size for size in ns.scan_histories if size not in latency_sizes]
    try:
        histories = [
            ensure_history(
                ns.work_dir, b, lines, rebuild=ns.rebuild, driver_memory=ns.driver_memory
            )
            for b, lines in latency_sizes + scan_sizes
        ]
    except (RuntimeError, OSError) as e:
        print(f"  cannot build the histories: {e}")
        return 2
    print(
        f"  {ns.clients} clients x {ns.seconds:g} s per route, HTTP on 127.0.0.1 (random "
        f"clients of the state; random channel/date filters); answers cached per "
        f"snapshot: {ns.cache_entries}"
    )
    measured: list[tuple[BuiltHistory, dict[str, RouteResult]]] = []
    scans: list[ScanReport] = []
    for history in histories[: len(latency_sizes)]:
        results, scan = serve(history, ns)
        measured.append((history, results))
        scans.append(scan)
    for history in histories[len(latency_sizes) :]:
        with bench_catalog(history.root / "warehouse") as catalog:
            catalog.register(history.metadata)
            scans.append(measure_scan(catalog, history))
    if len(measured) > 1:
        (first, early), (last, late) = measured[0], measured[-1]
        kind = "uncached" if ns.cache_entries == 0 else f"cache of {ns.cache_entries}"
        print(f"\n  p50 ({kind}) after {last.label} / after {first.label} (target <= 1.5x):")
        for route in early:
            ratio = late[route].p50_ms / early[route].p50_ms if early[route].p50_ms else 0.0
            print(
                f"    {route:<22}{early[route].p50_ms:>8.1f} ms {late[route].p50_ms:>8.1f} ms"
                f"{ratio:>8.2f}x"
            )
    print(
        "\n  Athena bytes scanned per request (compressed column chunks of the columns read, "
        "in the files Iceberg plans at the publication, delete files included; client "
        f"routes: the most of {SCAN_CLIENTS} clients; target <= 1 MB; Athena bills at least "
        "10 MB per query):"
    )
    for scan in scans:
        print_scan(scan)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
