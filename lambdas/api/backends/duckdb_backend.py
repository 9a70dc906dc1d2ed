"""DuckDB backend for local mode: publications of the state's Iceberg tables, read with
pyiceberg through the Glue catalog.

The backend keeps snapshots in the warm process: an in-memory DuckDB database holding the
tables the API reads (reports_sql.API_TABLES) as of one publication, so a request costs a
lookup in one client's rows or an aggregate over a small table, whatever the history. The
latest publication's snapshot is rebuilt when a new publication appears (checked at most
every `check_interval_s`), in the background while requests keep reading the previous one,
and swapped in whole. A request `as_of` an earlier instant is answered from a snapshot of
the publication current then (the last few are kept).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from duffbeer import aws, reports_sql, state
from duffbeer.errors import QueryError
from duffbeer.reports_sql import SqlValue
from duffbeer.state import Publication
from lambdas.api.config import ApiConfig
from lambdas.api.publications import PublicationCache, read_publications, select
from lambdas.api.queries import Row

logger = Logger(child=True)

# Per-client tables, kept in client order: the zone maps of the sorted columns narrow a
# client's lookup to the row groups holding it (faster here than an ART index, whose plan
# joins the rows it finds back to the table).
_BY_CLIENT = {
    state.CLIENT_REPORT_TABLE: ("client_id",),
    state.CLIENT_ORDERS_TABLE: ("client_id", "order_id"),
}

# Answers kept per snapshot (least recently used dropped first); a client's page of orders
# is the largest answer, at most params.MAX_PAGE_SIZE + 1 rows.
DEFAULT_CACHE_ENTRIES = 20_000
# Snapshots of earlier publications (as_of requests) kept besides the latest one.
EARLIER_SNAPSHOTS = 4

# (table, snapshot id) -> the table's rows at that snapshot, as an Arrow table.
TableLoader = Callable[[str, int], Any]


@dataclass
class Snapshot:
    """One publication in memory (or none, before the first); replaced, never modified."""

    connection: Any
    publication: Publication | None
    rows: dict[str, int] = field(default_factory=dict)
    built_at: float = field(default_factory=time.time)
    # Answers already computed on this snapshot. Exact, because a snapshot never changes:
    # a new publication makes a new snapshot with an empty cache.
    results: OrderedDict[tuple[str, tuple[SqlValue, ...]], list[Row]] = field(
        default_factory=OrderedDict
    )
    results_lock: threading.Lock = field(default_factory=threading.Lock)
    hits: int = 0
    misses: int = 0

    @property
    def seq(self) -> int | None:
        return self.publication.seq if self.publication else None


def iceberg_loader(database: str, endpoint_url: str | None, region: str | None) -> TableLoader:
    """Reads a table at a snapshot with pyiceberg's Glue catalog (local mode only: pyiceberg
    and pyarrow are not in the Lambda bundle). Credentials come from the environment."""
    from pyiceberg.catalog import load_catalog  # noqa: PLC0415

    properties: dict[str, str] = {"type": "glue"}
    if region:
        properties |= {"glue.region": region, "s3.region": region}
    if endpoint_url:
        properties |= {"glue.endpoint": endpoint_url, "s3.endpoint": endpoint_url}
    catalog = load_catalog("duffbeer", **properties)

    def load(table: str, snapshot_id: int) -> Any:
        return catalog.load_table(f"{database}.{table}").scan(snapshot_id=snapshot_id).to_arrow()

    return load


def build_snapshot(publication: Publication | None, load: TableLoader) -> Snapshot:
    """Load the API's tables of one publication into an in-memory database."""
    if publication is None:
        return Snapshot(connection=None, publication=None)
    import duckdb  # noqa: PLC0415  (local mode only: not in the Lambda bundle)

    connection = duckdb.connect(":memory:")
    # Timestamps are UTC throughout; the session zone must not shift them when stored.
    connection.execute("SET TimeZone = 'UTC'")
    rows: dict[str, int] = {}
    for name in reports_sql.API_TABLES:
        table = state.STATE_TABLES[name]
        snapshot_id = publication.snapshots.get(name)
        if snapshot_id is None:
            # Made before an upgrade added the table: the reports reading it say so.
            continue
        try:
            loaded = load(name, snapshot_id)
        except Exception as e:
            # pyiceberg and pyarrow raise their own errors (missing file, bad metadata).
            raise QueryError(
                f"could not read {name} at snapshot {snapshot_id} (publication "
                f"{publication.seq}): {type(e).__name__}: {e}"
            ) from e
        definition = ", ".join(f"{c} {reports_sql.sql_type(kind)}" for c, kind in table.columns)
        order = ", ".join(_BY_CLIENT.get(name, ()))
        connection.execute(f"CREATE TABLE {name} ({definition})")
        connection.register("loaded_rows", loaded)
        connection.execute(
            f"INSERT INTO {name} BY NAME SELECT * FROM loaded_rows"
            + (f" ORDER BY {order}" if order else "")
        )
        connection.unregister("loaded_rows")
        counted = connection.execute(f"SELECT count(*) FROM {name}").fetchone()
        rows[name] = int(counted[0]) if counted else 0
    return Snapshot(connection=connection, publication=publication, rows=rows)


class DuckDBBackend:
    name = "duckdb"

    def __init__(
        self,
        *,
        read: Callable[[], list[Publication]],
        load: TableLoader,
        check_interval_s: float,
        background: bool = True,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publications = PublicationCache(read, check_interval_s, clock=clock)
        self._load = load
        self.check_interval_s = check_interval_s
        self.background = background
        self.cache_entries = cache_entries
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._earlier: OrderedDict[int, Snapshot] = OrderedDict()
        self._earlier_lock = threading.Lock()
        self._checked_at = 0.0
        self._last_error: str | None = None
        self._build_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ApiConfig) -> DuckDBBackend:
        clients: dict[str, Any] = {}

        def client(service: str) -> Any:
            if service not in clients:
                clients[service] = aws.client(service)
            return clients[service]

        loaders: list[TableLoader] = []

        def load(table: str, snapshot_id: int) -> Any:
            if not loaders:
                loaders.append(iceberg_loader(config.database, config.endpoint_url, config.region))
            return loaders[0](table, snapshot_id)

        return cls(
            read=lambda: read_publications(client("glue"), client("s3"), config.database),
            load=load,
            check_interval_s=config.snapshot_check_s,
        )

    def fetch(
        self, queries: Sequence[reports_sql.BoundQuery], as_of: datetime | None = None
    ) -> list[list[Row]]:
        # One snapshot for every query of the request: its answers are of one publication.
        snapshot = self._current() if as_of is None else self._as_of(as_of)
        return [self._cached(snapshot, query) for query in queries]

    def refresh(self) -> bool:
        """Check the publications now; load the latest one if it changed."""
        with self._build_lock:
            return self._refresh_locked(fresh=True)

    def published(self) -> list[Publication]:
        return self.publications.get()

    def status(self) -> dict[str, Any]:
        snapshot = self._snapshot
        # "publication" as the Athena backend reports it; "snapshot" is local mode's own.
        return {
            "backend": self.name,
            "publication": None if snapshot is None else snapshot.seq,
            "snapshot": None
            if snapshot is None
            else {
                "rows": snapshot.rows,
                "age_s": round(time.time() - snapshot.built_at, 1),
                "cached_answers": len(snapshot.results),
                "cache_hits": snapshot.hits,
                "cache_misses": snapshot.misses,
            },
            "last_refresh_error": self._last_error,
        }

    def _as_of(self, instant: datetime) -> Snapshot:
        publication = select(self.publications.get(), instant)
        assert publication is not None  # select raises rather than answer None for an instant
        current = self._current()
        if current.seq == publication.seq:
            return current
        with self._earlier_lock:
            snapshot = self._earlier.get(publication.seq)
            if snapshot is None:
                snapshot = build_snapshot(publication, self._load)
                self._earlier[publication.seq] = snapshot
                while len(self._earlier) > EARLIER_SNAPSHOTS:
                    self._earlier.popitem(last=False)
            self._earlier.move_to_end(publication.seq)
            return snapshot

    def _warm(self, snapshot: Snapshot) -> None:
        """Answer the report queries without a date filter (overall and per channel) before
        the snapshot serves requests: the most frequent ones."""
        if not self.cache_entries or snapshot.publication is None:
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
        if snapshot.publication is None:
            return []  # nothing published yet: every report is empty
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
        try:
            text = query.render({table: table for table in snapshot.rows})
        except KeyError as e:
            raise QueryError(f"query {query.name} names a table the API does not read: {e}") from e
        cursor = snapshot.connection.cursor()
        try:
            cursor.execute(text, list(query.params))
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

    def _refresh_locked(self, *, fresh: bool = False) -> bool:
        # Stamped first, so that an unreachable catalog is retried once per interval, not
        # on every request.
        self._checked_at = self._clock()
        latest = select(self.publications.get(fresh=fresh), None)
        current = self._snapshot
        if current is not None and (latest.seq if latest else None) == current.seq:
            return False
        started = time.perf_counter()
        snapshot = build_snapshot(latest, self._load)
        self._warm(snapshot)
        # One assignment: a request reads the previous publication or this one, never a mix.
        self._snapshot = snapshot
        self._last_error = None
        logger.info(
            "local snapshot built",
            extra={
                "publication": snapshot.seq,
                "rows": snapshot.rows,
                "build_s": round(time.perf_counter() - started, 3),
            },
        )
        return True
