"""DuckDB backend for local mode: the published state version, read through pyarrow's S3
filesystem.

The backend keeps a snapshot in the warm process: an in-memory DuckDB database holding the
tables the API reads (reports_sql.API_TABLES) of the version the state pointer publishes, so
a request costs a lookup in one client's rows or an aggregate over a small table, whatever
the history. A snapshot is one version: it is rebuilt only when the pointer's ETag changes
(checked at most every `check_interval_s`), in the background while requests keep reading
the previous one, and swapped in whole.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from duffbeer import aws, reports_sql, state
from duffbeer.contract import CLIENT_BUCKET_COLUMN
from duffbeer.errors import QueryError, StateNotPublishedError
from duffbeer.reports_sql import SqlValue
from lambdas.api.config import ApiConfig
from lambdas.api.pointer import PublishedState, read_pointer
from lambdas.api.queries import Row

logger = Logger(child=True)

PARQUET_SUFFIX = ".parquet"
# Per-client tables, kept in client order: the zone maps of the sorted columns narrow a
# client's lookup to the row groups holding it (faster here than an ART index, whose plan
# joins the rows it finds back to the table).
_BY_CLIENT = {
    state.CLIENT_REPORT_TABLE: (CLIENT_BUCKET_COLUMN, "client_id"),
    state.CLIENT_ORDERS_TABLE: (CLIENT_BUCKET_COLUMN, "client_id", "order_id"),
}

# Answers kept per snapshot (least recently used dropped first); a client's page of orders
# is the largest answer, at most params.MAX_PAGE_SIZE + 1 rows.
DEFAULT_CACHE_ENTRIES = 20_000


@dataclass(frozen=True)
class TableFile:
    """One Parquet file of a state table and the partition values its path stands for."""

    key: str
    partition: tuple[tuple[str, str], ...] = ()


@dataclass
class Snapshot:
    """One state version in memory (or none, before the first publication); replaced,
    never modified."""

    connection: Any
    published: PublishedState | None
    batches: int = 0
    lines: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    built_at: float = field(default_factory=time.time)
    # Answers already computed on this snapshot. Exact, because a snapshot never changes:
    # a new version makes a new snapshot with an empty cache.
    results: OrderedDict[tuple[str, tuple[SqlValue, ...]], list[Row]] = field(
        default_factory=OrderedDict
    )
    results_lock: threading.Lock = field(default_factory=threading.Lock)
    hits: int = 0
    misses: int = 0

    @property
    def etag(self) -> str | None:
        return self.published.etag if self.published else None

    @property
    def version(self) -> str | None:
        return self.published.version if self.published else None


def read_state_manifest(s3: Any, bucket: str, published: PublishedState) -> state.StateManifest:
    """The version manifest the pointer names, checked to be that version's."""
    key = published.state_manifest
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as e:
        raise QueryError(f"could not read s3://{bucket}/{key}: {e}") from e
    try:
        document = state.loads_manifest(body)
    except StateNotPublishedError as e:
        raise QueryError(f"s3://{bucket}/{key} is not a valid state manifest: {e}") from e
    if document["version"] != published.version:
        raise QueryError(
            f"s3://{bucket}/{key} describes version {document['version']}, "
            f"but the pointer publishes {published.version}"
        )
    return document


def table_files(
    s3: Any, bucket: str, manifest: state.StateManifest, table: state.StateTable
) -> list[TableFile]:
    """The Parquet files of one table of a version: under its prefix, or under each of its
    partitions' locations (a partition may live under an older version's prefix)."""
    version = manifest["version"]
    location = manifest["tables"].get(table.name)
    if location is None:
        raise QueryError(f"state version {version} lists no table {table.name}")
    if not table.partitioned:
        prefix = location.get("location")
        if prefix is None:
            raise QueryError(f"state version {version} gives table {table.name} no location")
        return [TableFile(key) for key in _parquet_keys(s3, bucket, prefix)]
    keys = [name for name, _ in table.partition_keys]
    files: list[TableFile] = []
    for partition in location.get("partitions", []):
        values = partition["values"]
        if sorted(values) != sorted(keys):
            raise QueryError(
                f"state version {version}: a partition of {table.name} at "
                f"{partition['location']} has values {values}, expected {keys}"
            )
        stamp = tuple((name, str(values[name])) for name in keys)
        files.extend(
            TableFile(key, stamp) for key in _parquet_keys(s3, bucket, partition["location"])
        )
    return files


def _parquet_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    try:
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        ]
    except (ClientError, BotoCoreError) as e:
        raise QueryError(f"could not list s3://{bucket}/{prefix}: {e}") from e
    # Spark's markers (_SUCCESS, .crc) are not data.
    return sorted(
        k for k in keys if k.endswith(PARQUET_SUFFIX) and k.rsplit("/", 1)[-1][:1] not in "._"
    )


def s3_filesystem(endpoint_url: str | None, region: str | None) -> Any:
    """pyarrow's S3 filesystem, pointed at the same endpoint as boto3 in local mode."""
    from pyarrow import fs  # noqa: PLC0415  (local mode only: not in the Lambda bundle)

    if endpoint_url is None:
        return fs.S3FileSystem(region=region)
    parts = urlsplit(endpoint_url)
    return fs.S3FileSystem(endpoint_override=parts.netloc, scheme=parts.scheme, region=region)


def build_snapshot(
    published: PublishedState | None, s3: Any, bucket: str, filesystem: Any
) -> Snapshot:
    """Load the API's tables of the published version into an in-memory database."""
    if published is None:
        return Snapshot(connection=None, published=None)
    import duckdb  # noqa: PLC0415  (local mode only: not in the Lambda bundle)

    manifest = read_state_manifest(s3, bucket, published)
    connection = duckdb.connect(":memory:")
    # Timestamps are UTC throughout; the session zone must not shift them when stored.
    connection.execute("SET TimeZone = 'UTC'")
    rows: dict[str, int] = {}
    for name in reports_sql.API_TABLES:
        table = state.STATE_TABLES[name]
        files = table_files(s3, bucket, manifest, table)
        columns = (*table.columns, *table.partition_keys)
        definition = ", ".join(f"{c} {reports_sql.sql_type(kind)}" for c, kind in columns)
        connection.execute(f"CREATE TABLE {name}_loaded ({definition})")
        if files:
            loaded = _read_table(table, files, bucket, filesystem, manifest["version"])
            connection.register("loaded_files", loaded)
            connection.execute(f"INSERT INTO {name}_loaded BY NAME SELECT * FROM loaded_files")
            connection.unregister("loaded_files")
        order = ", ".join(_BY_CLIENT.get(name, ()))
        connection.execute(
            f"CREATE TABLE {name} AS SELECT * FROM {name}_loaded"
            + (f" ORDER BY {order}" if order else "")
        )
        connection.execute(f"DROP TABLE {name}_loaded")
        counted = connection.execute(f"SELECT count(*) FROM {name}").fetchone()
        rows[name] = int(counted[0]) if counted else 0
    return Snapshot(
        connection=connection,
        published=published,
        batches=len(manifest["batches"]),
        lines=int(manifest.get("counts", {}).get("lines", 0)),
        rows=rows,
    )


def _read_table(
    table: state.StateTable, files: Sequence[TableFile], bucket: str, filesystem: Any, version: str
) -> Any:
    """One table's files as an Arrow table, partition columns from the version manifest."""
    import pyarrow as pa  # noqa: PLC0415  (local mode only: not in the Lambda bundle)
    import pyarrow.dataset as ds  # noqa: PLC0415

    paths = [f"{bucket}/{f.key}" for f in files]
    file_format = ds.ParquetFileFormat()
    try:
        file_schema = file_format.inspect(paths[0], filesystem=filesystem)
        # Partition columns are typed by the manifest's text; DuckDB casts on insert.
        schema = pa.schema(
            [
                *(file_schema.field(name) for name, _ in table.columns),
                *(pa.field(name, pa.string()) for name, _ in table.partition_keys),
            ]
        )
        partitions = (
            [_partition_expression(ds, pa, f.partition) for f in files]
            if table.partitioned
            else None
        )
        dataset = ds.FileSystemDataset.from_paths(
            paths,
            schema=schema,
            format=file_format,
            filesystem=filesystem,
            partitions=partitions,
        )
        return dataset.to_table()
    except (OSError, KeyError, pa.ArrowException) as e:
        raise QueryError(
            f"could not read table {table.name} of state version {version} from s3://{bucket}: {e}"
        ) from e


def _partition_expression(ds: Any, pa: Any, values: tuple[tuple[str, str], ...]) -> Any:
    expression = None
    for name, value in values:
        term = ds.field(name) == pa.scalar(value, pa.string())
        expression = term if expression is None else expression & term
    return expression


class DuckDBBackend:
    name = "duckdb"

    def __init__(
        self,
        *,
        bucket: str,
        check_interval_s: float,
        s3_client: Any | None = None,
        filesystem: Any | None = None,
        filesystem_factory: Callable[[], Any] | None = None,
        background: bool = True,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self.check_interval_s = check_interval_s
        self._s3 = s3_client
        self._filesystem = filesystem
        self._filesystem_factory = filesystem_factory
        self.background = background
        self.cache_entries = cache_entries
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0
        self._last_error: str | None = None
        self._build_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ApiConfig) -> DuckDBBackend:
        return cls(
            bucket=config.processed_bucket,
            check_interval_s=config.snapshot_check_s,
            filesystem_factory=lambda: s3_filesystem(config.endpoint_url, config.region),
        )

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws.client("s3")
        return self._s3

    @property
    def filesystem(self) -> Any:
        if self._filesystem is None:
            factory = self._filesystem_factory or (lambda: s3_filesystem(None, None))
            self._filesystem = factory()
        return self._filesystem

    def fetch(self, queries: Sequence[reports_sql.BoundQuery]) -> list[list[Row]]:
        # One snapshot for every query of the request: its answers are of one version.
        snapshot = self._current()
        return [self._cached(snapshot, query) for query in queries]

    def refresh(self) -> bool:
        """Check the state pointer now; load its version if it changed."""
        with self._build_lock:
            return self._refresh_locked()

    def status(self) -> dict[str, Any]:
        snapshot = self._snapshot
        return {
            "backend": self.name,
            "bucket": self.bucket,
            "snapshot": None
            if snapshot is None
            else {
                "state_version": snapshot.version,
                "state_seq": snapshot.published.seq if snapshot.published else None,
                "batches": snapshot.batches,
                "current_lines": snapshot.lines,
                "rows": snapshot.rows,
                "age_s": round(time.time() - snapshot.built_at, 1),
                "cached_answers": len(snapshot.results),
                "cache_hits": snapshot.hits,
                "cache_misses": snapshot.misses,
            },
            "last_refresh_error": self._last_error,
        }

    def _warm(self, snapshot: Snapshot) -> None:
        """Answer the report queries without a date filter (overall and per channel) before
        the snapshot serves requests: the most frequent ones."""
        if not self.cache_entries or snapshot.published is None:
            return
        channels = [
            row["point_of_sale_channel"]
            for row in self._run(snapshot, reports_sql.channels_query())
        ]
        for channel in (None, *channels):
            for query in (
                reports_sql.sales_by_product_query(channel),
                reports_sql.order_status_query(channel),
            ):
                self._cached(snapshot, query)

    def _cached(self, snapshot: Snapshot, query: reports_sql.BoundQuery) -> list[Row]:
        if snapshot.published is None:
            return []  # nothing published yet: every report is empty
        key = (query.sql, query.bind(snapshot.published.client_buckets))
        with snapshot.results_lock:
            rows = snapshot.results.get(key)
            if rows is not None:
                snapshot.results.move_to_end(key)
                snapshot.hits += 1
                return rows
            snapshot.misses += 1
        rows = self._run(snapshot, query)
        if self.cache_entries:
            with snapshot.results_lock:
                snapshot.results[key] = rows
                while len(snapshot.results) > self.cache_entries:
                    snapshot.results.popitem(last=False)
        return rows

    def _run(self, snapshot: Snapshot, query: reports_sql.BoundQuery) -> list[Row]:
        assert snapshot.published is not None  # an empty snapshot answers without a query
        try:
            text = query.render({table: table for table in reports_sql.API_TABLES})
        except KeyError as e:
            raise QueryError(f"query {query.name} names a table the API does not read: {e}") from e
        cursor = snapshot.connection.cursor()
        try:
            cursor.execute(text, list(query.bind(snapshot.published.client_buckets)))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except Exception as e:
            # duckdb's own error classes are not importable here without the module.
            raise QueryError(f"local query {query.name} failed: {e}") from e
        finally:
            cursor.close()

    def _current(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            with self._build_lock:
                if self._snapshot is None:
                    self._refresh_locked()
            assert self._snapshot is not None  # _refresh_locked always sets one or raises
            return self._snapshot
        due = self._clock() - self._checked_at >= self.check_interval_s
        if due and self._build_lock.acquire(blocking=False):
            if self.background:
                threading.Thread(
                    target=self._refresh_released, name="snapshot-refresh", daemon=True
                ).start()
            else:
                self._refresh_released()
        return self._snapshot or snapshot

    def _refresh_released(self) -> None:
        """A later refresh (the lock already held): its failure must not fail requests that
        the previous snapshot can still answer."""
        try:
            self._refresh_locked()
        except Exception as e:
            # Keep serving the previous snapshot; log the failure and report it on /health.
            self._last_error = str(e)
            logger.exception("snapshot refresh failed; serving the previous snapshot")
        finally:
            self._build_lock.release()

    def _refresh_locked(self) -> bool:
        # Stamped first, so that an unreachable bucket is retried once per interval, not
        # on every request.
        self._checked_at = self._clock()
        published = read_pointer(self.s3, self.bucket)
        current = self._snapshot
        if current is not None and (published.etag if published else None) == current.etag:
            return False
        started = time.perf_counter()
        snapshot = build_snapshot(published, self.s3, self.bucket, self.filesystem)
        self._warm(snapshot)
        # One assignment: a request reads the previous version or this one, never a mix.
        self._snapshot = snapshot
        self._last_error = None
        logger.info(
            "local snapshot built",
            extra={
                "state_version": snapshot.version,
                "rows": snapshot.rows,
                "build_s": round(time.perf_counter() - started, 3),
            },
        )
        return True
