"""DuckDB backend for local mode: the published Parquet, read through pyarrow's S3 filesystem.

The backend keeps a snapshot in the warm process: an in-memory DuckDB database holding the
current lines of every published batch and the API relations (reports_sql.API_RELATIONS)
materialised over them, so a request costs a lookup or a small aggregate rather than a
window over every line. The snapshot is rebuilt only when the set of published manifests
(their keys and ETags) changes; that set is listed at most every `check_interval_s`, and the
rebuild runs in the background while requests keep reading the previous snapshot.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from duffbeer import aws, manifest, reports_sql
from duffbeer.contract import CURATED_DATA_COLUMNS, CURATED_PARTITION_COLUMNS
from duffbeer.errors import BatchNotPublishedError, QueryError
from duffbeer.naming import MANIFESTS_PREFIX, ORDER_LINES_TABLE
from duffbeer.reports_sql import SqlValue
from lambdas.api.config import ApiConfig
from lambdas.api.queries import Row

logger = Logger(child=True)

PARQUET_SUFFIX = ".parquet"
_DUCKDB_TYPES = {
    "int": "INTEGER",
    "bigint": "BIGINT",
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "double": "DOUBLE",
}
# Relations looked up by client: kept in client order with an index on client_id.
_INDEXED_BY_CLIENT = (reports_sql.API_CLIENT_REPORT, reports_sql.API_CLIENT_ORDERS)

Fingerprint = tuple[tuple[str, str], ...]
# Answers kept per snapshot (least recently used dropped first); a client's page of orders
# is the largest answer, at most params.MAX_PAGE_SIZE + 1 rows.
DEFAULT_CACHE_ENTRIES = 20_000


def duckdb_type(glue_type: str) -> str:
    if glue_type.startswith("decimal("):
        return glue_type.upper()
    return _DUCKDB_TYPES[glue_type]


@dataclass(frozen=True)
class PublishedFile:
    key: str
    point_of_sale_channel: str
    order_date: date


@dataclass(frozen=True)
class PublishedBatch:
    batch_id: str
    run_id: str
    files: tuple[PublishedFile, ...]


@dataclass
class Snapshot:
    """One immutable view of the published batches; replaced, never modified."""

    connection: Any
    fingerprint: Fingerprint
    batches: int
    lines: int
    orders_within_partitions: bool
    relations: frozenset[str]
    built_at: float = field(default_factory=time.time)
    # Answers already computed on this snapshot. Exact, because a snapshot never changes:
    # a new set of published batches makes a new snapshot with an empty cache.
    results: OrderedDict[tuple[str, tuple[SqlValue, ...]], list[Row]] = field(
        default_factory=OrderedDict
    )
    results_lock: threading.Lock = field(default_factory=threading.Lock)
    hits: int = 0
    misses: int = 0


def list_manifests(s3: Any, bucket: str) -> Fingerprint:
    """The published manifests' keys and ETags: what the snapshot is a function of."""
    entries: list[tuple[str, str]] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=MANIFESTS_PREFIX
        ):
            contents = page.get("Contents", [])
            entries.extend((o["Key"], o["ETag"]) for o in contents if o["Key"].endswith(".json"))
    except (ClientError, BotoCoreError) as e:
        raise QueryError(f"could not list s3://{bucket}/{MANIFESTS_PREFIX}: {e}") from e
    return tuple(sorted(entries))


def published_batches(s3: Any, bucket: str, manifest_keys: Sequence[str]) -> list[PublishedBatch]:
    """The Parquet files each manifest's `published` block names; unpublished runs (and
    manifests with nothing published yet) contribute nothing."""
    batches: list[PublishedBatch] = []
    for key in manifest_keys:
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as e:
            raise QueryError(f"could not read s3://{bucket}/{key}: {e}") from e
        try:
            document = manifest.loads(body)
        except (ValueError, BatchNotPublishedError) as e:
            raise QueryError(f"s3://{bucket}/{key} is not a valid manifest: {e}") from e
        published = manifest.published_block(document)
        if not published or not published["partitions"]:
            continue
        partitions = {p["location"]: p for p in published["partitions"]}
        files: list[PublishedFile] = []
        for object_key in _keys_under(s3, bucket, published["outputs"]["order_lines"]):
            if not object_key.endswith(PARQUET_SUFFIX):
                continue
            location = object_key.rsplit("/", 1)[0] + "/"
            partition = partitions.get(location)
            if partition is not None:
                files.append(
                    PublishedFile(
                        object_key,
                        partition["point_of_sale_channel"],
                        date.fromisoformat(partition["order_date"]),
                    )
                )
        batches.append(PublishedBatch(document["batch_id"], published["run_id"], tuple(files)))
    return batches


def _keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    try:
        return [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        ]
    except (ClientError, BotoCoreError) as e:
        raise QueryError(f"could not list s3://{bucket}/{prefix}: {e}") from e


def s3_filesystem(endpoint_url: str | None, region: str | None) -> Any:
    """pyarrow's S3 filesystem, pointed at the same endpoint as boto3 in local mode."""
    from pyarrow import fs  # noqa: PLC0415  (local mode only: not in the Lambda bundle)

    if endpoint_url is None:
        return fs.S3FileSystem(region=region)
    parts = urlsplit(endpoint_url)
    return fs.S3FileSystem(endpoint_override=parts.netloc, scheme=parts.scheme, region=region)


def build_snapshot(
    batches: Sequence[PublishedBatch], bucket: str, filesystem: Any, fingerprint: Fingerprint
) -> Snapshot:
    """Load the published lines, keep their current versions, materialise the API relations."""
    import duckdb  # noqa: PLC0415  (local mode only: not in the Lambda bundle)

    connection = duckdb.connect(":memory:")
    columns = (*CURATED_DATA_COLUMNS, *CURATED_PARTITION_COLUMNS)
    connection.execute(
        f"CREATE TABLE {ORDER_LINES_TABLE} ("
        + ", ".join(f"{name} {duckdb_type(kind)}" for name, kind in columns)
        + ")"
    )
    for batch in batches:
        if batch.files:
            lines = _read_batch(batch, bucket, filesystem)
            connection.register("published_batch", lines)
            connection.execute(
                f"INSERT INTO {ORDER_LINES_TABLE} BY NAME SELECT * FROM published_batch"
            )
            connection.unregister("published_batch")
    connection.execute(
        f"CREATE TABLE {reports_sql.CURRENT_LINES_VIEW} AS {reports_sql.CURRENT_LINES_SQL}"
    )
    connection.execute(f"DROP TABLE {ORDER_LINES_TABLE}")
    lines_row = connection.execute(
        f"SELECT count(*) FROM {reports_sql.CURRENT_LINES_VIEW}"
    ).fetchone()
    spanning_row = connection.execute(reports_sql.ORDERS_SPANNING_PARTITIONS_SQL).fetchone()
    within_partitions = spanning_row is not None and spanning_row[0] == 0
    relations = set(reports_sql.API_RELATIONS)
    if within_partitions:
        # Never read: the status report runs on the per-partition counts instead.
        relations.discard(reports_sql.API_STATUS_ORDERS)
    for name in relations:
        connection.execute(
            f"CREATE TABLE {name} AS SELECT * FROM ({reports_sql.API_RELATIONS[name]}) ORDER BY ALL"
        )
        if name in _INDEXED_BY_CLIENT:
            connection.execute(f"CREATE INDEX {name}_client ON {name} (client_id)")
    return Snapshot(
        connection=connection,
        fingerprint=fingerprint,
        batches=len(batches),
        lines=int(lines_row[0]) if lines_row else 0,
        orders_within_partitions=within_partitions,
        relations=frozenset(relations),
    )


def _read_batch(batch: PublishedBatch, bucket: str, filesystem: Any) -> Any:
    """One batch's lines as an Arrow table, partition values taken from its manifest."""
    import pyarrow as pa  # noqa: PLC0415  (local mode only: not in the Lambda bundle)
    import pyarrow.dataset as ds  # noqa: PLC0415

    paths = [f"{bucket}/{f.key}" for f in batch.files]
    file_format = ds.ParquetFileFormat()
    try:
        file_schema = file_format.inspect(paths[0], filesystem=filesystem)
        schema = pa.schema(
            [
                *(file_schema.field(name) for name, _ in CURATED_DATA_COLUMNS),
                pa.field("point_of_sale_channel", pa.string()),
                pa.field("order_date", pa.date32()),
            ]
        )
        dataset = ds.FileSystemDataset.from_paths(
            paths,
            schema=schema,
            format=file_format,
            filesystem=filesystem,
            partitions=[
                (ds.field("point_of_sale_channel") == pa.scalar(f.point_of_sale_channel))
                & (ds.field("order_date") == pa.scalar(f.order_date, pa.date32()))
                for f in batch.files
            ],
        )
        return dataset.to_table()
    except (OSError, KeyError, pa.ArrowException) as e:
        raise QueryError(
            f"could not read the published lines of batch {batch.batch_id} "
            f"(run {batch.run_id}) from s3://{bucket}: {e}"
        ) from e


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
        snapshot = self._current()
        return [self._cached(snapshot, query) for query in queries]

    def refresh(self) -> bool:
        """Check the published manifests now; rebuild the snapshot if they changed."""
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
                "batches": snapshot.batches,
                "current_lines": snapshot.lines,
                "age_s": round(time.time() - snapshot.built_at, 1),
                "orders_within_partitions": snapshot.orders_within_partitions,
                "cached_answers": len(snapshot.results),
                "cache_hits": snapshot.hits,
                "cache_misses": snapshot.misses,
            },
            "last_refresh_error": self._last_error,
        }

    def _warm(self, snapshot: Snapshot) -> None:
        """Answer the report queries without a date filter (overall and per channel) before
        the snapshot serves requests: the most frequent ones, and the dearest to compute."""
        if not self.cache_entries:
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
        if snapshot.orders_within_partitions and query.within_partitions is not None:
            query = query.within_partitions
        key = (query.sql, query.params)
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
        if query.relation not in snapshot.relations:
            raise QueryError(f"relation {query.relation} is not in the local snapshot")
        cursor = snapshot.connection.cursor()
        try:
            cursor.execute(query.sql, list(query.params))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except Exception as e:
            # duckdb's own error classes are not importable here without the module.
            raise QueryError(f"local query on {query.relation} failed: {e}") from e
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
        fingerprint = list_manifests(self.s3, self.bucket)
        current = self._snapshot
        if current is not None and current.fingerprint == fingerprint:
            return False
        started = time.perf_counter()
        batches = published_batches(self.s3, self.bucket, [key for key, _ in fingerprint])
        snapshot = build_snapshot(batches, self.bucket, self.filesystem, fingerprint)
        self._warm(snapshot)
        self._snapshot = snapshot
        self._last_error = None
        logger.info(
            "local snapshot built",
            extra={
                "batches": snapshot.batches,
                "current_lines": snapshot.lines,
                "orders_within_partitions": snapshot.orders_within_partitions,
                "build_s": round(time.perf_counter() - started, 3),
            },
        )
        return True
