"""API benchmark: the handler over real HTTP on 127.0.0.1 against state histories built by
the real merge job, 20 concurrent clients per route; prints requests/s, p50 and p99 after 1
and after 10 batches (and their ratio), and the bytes Athena would scan per request at 1M
and 10M line versions of history. Figures are printed, never asserted.

    python -m bench.bench_api [--lines-per-batch 100000] [--latency-batches 1,10]
                              [--scan-versions 1000000,10000000] [--clients 20] [--seconds 30]
                              [--cache-entries 0] [--root <processed root>]

Each history is a local processed root (runs/, manifests/, state/) that
bench.state_history.build_history writes by running the Glue jobs, reused from --work-dir
when present; it is uploaded into a moto S3 server and served by the DuckDB backend.
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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from moto.server import ThreadedMotoServer

from duffbeer import naming, reports_sql, state
from lambdas.api.backends.duckdb_backend import DuckDBBackend
from lambdas.api.handler import create_app
from lambdas.api.params import ReportFilters
from lambdas.api.queries import ReportService

ROOT = Path(__file__).resolve().parents[1]
BUCKET = naming.DEFAULT_PROCESSED_BUCKET
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


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class History:
    """A processed root holding a state built from `batches` batches (0: given as is)."""

    root: Path
    batches: int
    lines_per_batch: int

    @property
    def label(self) -> str:
        if not self.batches:
            return str(self.root)
        return f"{self.batches} x {self.lines_per_batch} lines"


def ensure_history(work_dir: Path, batches: int, lines_per_batch: int, rebuild: bool) -> History:
    """The history's root, built with bench.state_history.build_history unless present."""
    root = work_dir / f"history-{batches}x{lines_per_batch}-u{UPDATE_SHARE}-s{SEED}"
    history = History(root, batches, lines_per_batch)
    if not rebuild and (root / naming.STATE_POINTER_KEY).exists():
        return history
    from bench.state_history import build_history  # noqa: PLC0415  (heavy: Spark)

    started = time.perf_counter()
    build_history(
        root,
        batches=batches,
        lines_per_batch=lines_per_batch,
        update_share=UPDATE_SHARE,
        seed=SEED,
    )
    print(f"  built {history.label} in {time.perf_counter() - started:.0f} s: {root}")
    return history


def published_manifest(root: Path) -> state.StateManifest:
    pointer = state.loads_pointer((root / naming.STATE_POINTER_KEY).read_bytes())
    return state.loads_manifest((root / pointer["state_manifest"]).read_bytes())


def upload(root: Path, s3: Any, bucket: str) -> tuple[int, int]:
    """Every file under the root as an object of the bucket (key = relative path); the
    state pointer last, as publication writes it. Returns files and bytes."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    pointer = root / naming.STATE_POINTER_KEY
    ordered = [p for p in files if p != pointer] + ([pointer] if pointer in files else [])

    def put(path: Path) -> int:
        s3.upload_file(str(path), bucket, path.relative_to(root).as_posix())
        return path.stat().st_size

    with ThreadPoolExecutor(max_workers=8) as pool:
        sizes = list(pool.map(put, ordered[:-1]))
    sizes += [put(p) for p in ordered[-1:]]
    return len(sizes), sum(sizes)


# --- What the load asks for ------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpace:
    """The values the clients draw from: clients, channels and days present in the state."""

    client_ids: tuple[int, ...]
    channels: tuple[str, ...]
    first_day: date
    days: int


def target_space(root: Path, manifest: state.StateManifest) -> TargetSpace:
    def read(table: str, columns: list[str]) -> Any:
        paths = table_files(root, manifest, table)
        tables = [pq.read_table(p, columns=columns) for p in paths]
        return [t for t in tables if t.num_rows]

    clients: set[int] = set()
    for t in read(state.CLIENT_REPORT_TABLE, ["client_id"]):
        clients.update(pc.unique(t["client_id"]).to_pylist())
    channels: set[str] = set()
    days: set[date] = set()
    for t in read(state.STATUS_DAILY_TABLE, ["point_of_sale_channel", "order_date"]):
        channels.update(pc.unique(t["point_of_sale_channel"]).to_pylist())
        days.update(pc.unique(t["order_date"]).to_pylist())
    sample = sorted(
        random.Random(SEED).sample(sorted(clients), min(len(clients), MAX_CLIENT_SAMPLE))
    )
    first, last = (min(days), max(days)) if days else (date(2026, 1, 1), date(2026, 1, 1))
    return TargetSpace(tuple(sample), tuple(sorted(channels)), first, (last - first).days + 1)


def _targets(route: str, rng: random.Random, space: TargetSpace) -> str:
    if route == "health":
        return "/health"
    if route == "orders":
        return f"/orders/{rng.choice(space.client_ids)}"
    if route == "orders+list":
        return f"/orders/{rng.choice(space.client_ids)}?include=orders&limit=20"
    filters: list[str] = []
    if rng.random() < 0.5 and space.channels:
        filters.append(f"channel={rng.choice(space.channels)}")
    if route == "top-clients":
        return "/top-clients" + ("?" + filters[0] if filters else "")
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

# The queries of one request per route, filtered (a filter's columns are read too).
_SOME_DAY = date(2026, 1, 1)
ROUTE_QUERIES: dict[str, Callable[[], list[reports_sql.BoundQuery]]] = {
    "orders": lambda: [reports_sql.client_report_query(1)],
    "orders+list": lambda: [
        reports_sql.client_report_query(1),
        reports_sql.client_orders_query(1, 0, 21),
    ],
    "sales-by-product": lambda: [
        reports_sql.sales_by_product_query("Retail", _SOME_DAY, _SOME_DAY + timedelta(days=14))
    ],
    "order-status-report": lambda: [
        reports_sql.order_status_query("Retail", _SOME_DAY, _SOME_DAY + timedelta(days=14))
    ],
    "daily-sales": lambda: [
        reports_sql.daily_sales_query("Retail", _SOME_DAY, _SOME_DAY + timedelta(days=14))
    ],
    "top-clients": lambda: [reports_sql.top_clients_query("Retail", None, 10)],
}


def _parquet_under(root: Path, prefix: str) -> list[Path]:
    return sorted(
        p for p in (root / prefix).rglob("*.parquet") if not p.name.startswith(("_", "."))
    )


def table_files(root: Path, manifest: state.StateManifest, table: str) -> list[Path]:
    """Every Parquet file of one table of the version (all its partitions)."""
    return [f for files in partition_files(root, manifest, table) for f in files]


def partition_files(root: Path, manifest: state.StateManifest, table: str) -> list[list[Path]]:
    """The table's files, one list per partition (one list for an unpartitioned table)."""
    location = manifest["tables"][table]
    if "partitions" in location:
        return [_parquet_under(root, p["location"]) for p in location["partitions"]]
    return [_parquet_under(root, location["location"])]


def chunk_bytes(files: Sequence[Path], columns: set[str]) -> int:
    """Compressed bytes of the named columns' chunks in the files."""
    total = 0
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                if chunk.path_in_schema in columns:
                    total += chunk.total_compressed_size
    return total


def athena_scan_bytes(root: Path, manifest: state.StateManifest) -> dict[str, int]:
    """Per route, the compressed bytes of the column chunks its Athena queries read: the
    columns each query names, in the files it reads after partition pruning (the largest
    client_bucket partition for a query bound to one client's bucket, every partition
    otherwise)."""
    result: dict[str, int] = {}
    for route, queries in ROUTE_QUERIES.items():
        total = 0
        for query in queries():
            one_client = any(isinstance(p, reports_sql.ClientBucket) for p in query.params)
            for name in query.tables:
                table = state.STATE_TABLES[name]
                columns = {c for c, _ in table.columns if re.search(rf"\b{c}\b", query.sql)}
                partitions = partition_files(root, manifest, name)
                sizes = [chunk_bytes(files, columns) for files in partitions]
                total += max(sizes, default=0) if one_client else sum(sizes)
        result[route] = total
    return result


# --- The run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    hit_rate: float


def measure(
    history: History, endpoint: str, s3: Any, fs: Any, bucket: str, ns: argparse.Namespace
) -> dict[str, RouteResult]:
    """Upload the history, load its snapshot, and run the clients against every route."""
    s3.create_bucket(Bucket=bucket)
    started = time.perf_counter()
    files, size = upload(history.root, s3, bucket)
    uploaded = time.perf_counter() - started
    manifest = published_manifest(history.root)
    backend = DuckDBBackend(
        bucket=bucket,
        check_interval_s=3600.0,
        s3_client=s3,
        filesystem=fs,
        cache_entries=ns.cache_entries,
    )
    started = time.perf_counter()
    backend.refresh()
    loaded = time.perf_counter() - started
    snapshot = backend.status()["snapshot"]
    print(
        f"\n  history {history.label}: state version {snapshot['state_version']} "
        f"({snapshot['batches']} batches, {snapshot['current_lines']} current lines); "
        f"{files} files, {size / 1e6:.1f} MB uploaded in {uploaded:.1f} s; "
        f"snapshot loaded in {loaded:.2f} s"
    )
    print(f"    rows loaded: {json.dumps(snapshot['rows'])}")
    space = target_space(history.root, manifest)
    # The service answers once outside the load: a route that errors shows here.
    ReportService(backend).order_status_report(ReportFilters())
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
                f"{result.p99_ms:>9.1f}{result.errors:>8}{result.hit_rate:>12.0%}"
            )
    finally:
        front.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines-per-batch", type=int, default=100_000)
    parser.add_argument(
        "--latency-batches", default="1,10", help="histories whose latencies are compared"
    )
    parser.add_argument(
        "--scan-versions",
        default="1000000,10000000",
        help="line versions of the histories whose Athena scan is measured",
    )
    parser.add_argument("--scan-batches", type=int, default=10, help="batches of each scan history")
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
    parser.add_argument(
        "--root",
        type=Path,
        help="measure this processed root (runs/, manifests/, state/) instead of building "
        "histories",
    )
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "bench" / "api")
    parser.add_argument("--rebuild", action="store_true", help="build the histories again")
    ns = parser.parse_args(argv)
    # moto's server logs every request it serves.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    origin = (
        f"the processed root {ns.root}"
        if ns.root is not None
        else "histories built by bench.state_history.build_history "
        f"(update share {UPDATE_SHARE}, seed {SEED})"
    )
    print(f"api bench: the published state of {origin}, served from a moto S3 server")
    try:
        if ns.root is not None:
            if not (ns.root / naming.STATE_POINTER_KEY).exists():
                print(f"  {ns.root} holds no {naming.STATE_POINTER_KEY}: no state to measure")
                return 2
            histories = [History(ns.root, 0, 0)]
            scans = [History(ns.root, 0, 0)]
        else:
            ns.work_dir.mkdir(parents=True, exist_ok=True)
            histories = [
                ensure_history(ns.work_dir, int(b), ns.lines_per_batch, ns.rebuild)
                for b in ns.latency_batches.split(",")
            ]
            scans = [
                ensure_history(ns.work_dir, ns.scan_batches, int(v) // ns.scan_batches, ns.rebuild)
                for v in ns.scan_versions.split(",")
            ]
    except ImportError as e:
        print(
            f"  cannot build the histories ({e}): bench/state_history.py provides "
            "build_history; pass --root <processed root> to measure an existing one"
        )
        return 2
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        fs = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            region="us-east-1",
            access_key="bench",
            secret_key="bench",
        )
        print(
            f"  {ns.clients} clients x {ns.seconds:g} s per route, HTTP on 127.0.0.1 (random "
            f"clients of the state; random channel/date filters); answers cached per "
            f"snapshot: {ns.cache_entries}"
        )
        measured = [
            (history, measure(history, endpoint, s3, fs, f"{BUCKET}-{i}", ns))
            for i, history in enumerate(histories)
        ]
    finally:
        moto.stop()
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
        "after partition pruning; target <= 1 MB; Athena bills at least 10 MB per query):"
    )
    scanned = []
    for history in scans:
        manifest = published_manifest(history.root)
        scanned.append((history, manifest, athena_scan_bytes(history.root, manifest)))
    versions = [
        f"{h.batches * h.lines_per_batch} versions" if h.batches else "given root"
        for h, _, _ in scanned
    ]
    current = [f"{m.get('counts', {}).get('lines', '?')} current lines" for _, m, _ in scanned]
    print(f"    {'route':<22}" + "".join(f"{v:>24}" for v in versions))
    print(f"    {'':<22}" + "".join(f"{c:>24}" for c in current))
    for route in ROUTE_QUERIES:
        print(f"    {route:<22}" + "".join(f"{b[route] / 1e6:>21.3f} MB" for _, _, b in scanned))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
