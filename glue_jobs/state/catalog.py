"""The state's Iceberg tables as the state job uses them: DDL, branches, row merges, the
conditional publication, and the main branch that follows the latest publication.

A merge never writes the tables' main branch. It writes a branch of each table it changes,
created at the snapshot of the publication it started from, then publishes: one commit to
`state_publications`, validated against that publication, whose snapshot summary names
every table's snapshot (duffbeer.state.Publication). Only then does main move, to the
published snapshots, for the users who query the tables by name. Metadata (snapshots,
refs) is read with Iceberg's Java API through the session; data with Spark SQL.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from duffbeer import state, utc
from duffbeer.iceberg import CATALOG
from duffbeer.state import (
    PUBLICATIONS,
    STATE_TABLES,
    BatchRun,
    Publication,
    SnapshotInfo,
    StateTable,
)
from glue_jobs.state.tables import conform, ddl

# What Iceberg raises when a commit loses to another one: the publication's validation
# failed (another publication landed since ours started), or the catalog's compare-and-swap
# of the metadata location did (Glue's UpdateTable refused a stale VersionId).
COMMIT_CONFLICTS = (
    "org.apache.iceberg.exceptions.ValidationException",
    "org.apache.iceberg.exceptions.CommitFailedException",
)
# Merges of several executions commit to branches of the same tables at once; each commit
# that loses the metadata swap is re-applied on the new metadata, this many times.
COMMIT_RETRIES = 20
_BRANCH = re.compile(r"[^A-Za-z0-9_]+")
_DELETE = "_delete"


def branch_name(run_id: str, attempt: int) -> str:
    """A branch only one merge attempt writes: the execution's name and the attempt."""
    return f"merge_{_BRANCH.sub('_', run_id)}_{attempt}"


def table_properties(table: StateTable) -> dict[str, str]:
    mode = "merge-on-read" if table.merge_on_read else "copy-on-write"
    return {
        "format-version": "2",
        "write.delete.mode": mode,
        "write.update.mode": mode,
        "write.merge.mode": mode,
        "write.merge.isolation-level": "serializable",
        "commit.retry.num-retries": str(COMMIT_RETRIES),
        "commit.retry.min-wait-ms": "50",
        "commit.retry.max-wait-ms": "5000",
    }


def create_table_sql(name: str, table: StateTable) -> str:
    partitioned = (
        f"\nPARTITIONED BY ({', '.join(table.partitioned_by)})" if table.partitioned_by else ""
    )
    properties = ", ".join(f"'{k}' = '{v}'" for k, v in table_properties(table).items())
    return (
        f"CREATE TABLE IF NOT EXISTS {name} ({ddl(table.columns)})\nUSING iceberg"
        f"{partitioned}\nTBLPROPERTIES ({properties})"
    )


def _anti_join(left: DataFrame, right: DataFrame, key: Iterable[str]) -> DataFrame:
    """Rows of `left` whose key (compared null-safe) is not in `right`."""
    condition = [F.col(f"l.{k}").eqNullSafe(F.col(f"r.{k}")) for k in key]
    return left.alias("l").join(right.alias("r"), on=condition, how="left_anti")


# Iceberg 1.7's SnapshotManager (branch create/drop, set_current_snapshot) keeps the table
# metadata it first read across its commit retries, so after one lost swap every retry fails
# with "Table metadata refresh is required". A ref change is therefore retried here as a new
# statement, which reads the table again (the catalog caches no table).
REF_CHANGE_ATTEMPTS = 12
REF_CHANGE_BACKOFF_MAX_S = 2.0


def is_commit_conflict(error: Exception) -> bool:
    """Whether a Spark/py4j error was caused by a lost Iceberg commit."""
    cause: Any = error.java_exception if isinstance(error, Py4JJavaError) else None
    while cause is not None:
        if cause.getClass().getName() in COMMIT_CONFLICTS:
            return True
        cause = cause.getCause()
    return any(name in str(error) for name in COMMIT_CONFLICTS)


def change_refs(
    spark: SparkSession, statement: str, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Run a statement that changes a table's branches, again on a lost commit."""
    for attempt in range(1, REF_CHANGE_ATTEMPTS + 1):
        try:
            spark.sql(statement)
            return
        except Exception as e:
            if attempt == REF_CHANGE_ATTEMPTS or not is_commit_conflict(e):
                raise
        sleep(random.uniform(0, min(REF_CHANGE_BACKOFF_MAX_S, 0.05 * 2**attempt)))  # noqa: S311


@dataclass(frozen=True)
class Base:
    """What a merge starts from: the latest publication (None before the first), the
    snapshot of the publications table it was read at, and every table's snapshot."""

    publication: Publication | None
    publications_snapshot: int | None
    snapshots: Mapping[str, int]

    @property
    def next_seq(self) -> int:
        return self.publication.seq + 1 if self.publication is not None else 1


class StateCatalog:
    """The state tables of one database, through one SparkSession."""

    def __init__(self, spark: SparkSession, database: str, catalog: str = CATALOG) -> None:
        self.spark = spark
        self.database = database
        self.catalog = catalog
        self._branch: str | None = None
        self._branched: dict[str, int] = {}

    # --- Names and metadata ---------------------------------------------------------------

    def name(self, table: str) -> str:
        return f"{self.catalog}.{self.database}.{table}"

    def iceberg_table(self, table: str) -> Any:
        jvm: Any = self.spark.sparkContext._jvm
        return jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(
            self.spark._jsparkSession, self.name(table)
        )

    def main_snapshot(self, table: str) -> int | None:
        current = self.iceberg_table(table).currentSnapshot()
        return int(current.snapshotId()) if current is not None else None

    def ensure_tables(self) -> None:
        """Create the state's tables when missing, each with its sort order and an empty
        first snapshot (a branch needs a snapshot to start from) in one commit. Another job
        creating one at the same time is not an error."""
        self.spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {self.catalog}.{self.database}")
        for table in (*STATE_TABLES.values(), PUBLICATIONS):
            name = self.name(table.name)
            if not self.spark.catalog.tableExists(name):
                try:
                    self.spark.sql(create_table_sql(name, table))
                except Exception as e:
                    if "AlreadyExists" not in str(e):
                        raise
            java_table = self.iceberg_table(table.name)
            if java_table.currentSnapshot() is None:
                jvm: Any = self.spark.sparkContext._jvm
                iceberg = jvm.org.apache.iceberg
                transaction = java_table.newTransaction()
                order = transaction.replaceSortOrder()
                for column in table.ordered_by:
                    order = order.asc(
                        iceberg.expressions.Expressions.ref(column), iceberg.NullOrder.NULLS_FIRST
                    )
                order.commit()
                transaction.newAppend().commit()
                transaction.commitTransaction()

    def base(self) -> Base:
        """The latest publication and the snapshots a merge starts from (before the first
        publication: each table's current snapshot, its empty first one)."""
        publications = self.iceberg_table(PUBLICATIONS.name)
        current = publications.currentSnapshot()
        infos = [
            SnapshotInfo(int(s.snapshotId()), int(s.timestampMillis()), dict(s.summary()))
            for s in publications.snapshots()
        ]
        latest = state.as_of(state.publications(infos), None)
        snapshots = dict(latest.snapshots) if latest is not None else {}
        for table in STATE_TABLES:
            if table not in snapshots:
                snapshot = self.main_snapshot(table)
                if snapshot is not None:
                    snapshots[table] = snapshot
        return Base(
            publication=latest,
            publications_snapshot=int(current.snapshotId()) if current is not None else None,
            snapshots=snapshots,
        )

    # --- Reading -------------------------------------------------------------------------

    def read_at(self, table: str, snapshot: int) -> DataFrame:
        """A table as of one snapshot."""
        return self.spark.read.option("snapshot-id", str(snapshot)).table(self.name(table))

    def publication_rows(self, base: Base) -> list[dict[str, Any]]:
        """The publications table's rows at `base`: one per batch run a merge took in (a
        few hundred bytes each, read on the driver); upload times as aware UTC datetimes."""
        if base.publications_snapshot is None:
            return []
        columns = ("seq", "kind", "batch_id", "run_id", "source_sequencer", "rerun_at")
        frame = self.read_at(PUBLICATIONS.name, base.publications_snapshot).select(
            *columns,
            "pointer_etag",
            # PySpark would hand timestamps back in the driver's local time zone.
            F.date_format("source_event_time", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX").alias("_t"),
        )
        return [
            {**row.asDict(), "source_event_time": utc.parse(row["_t"]) if row["_t"] else None}
            for row in frame.collect()
        ]

    def read_branch(self, table: str, base: Base) -> DataFrame:
        """A table as this merge has written it so far (its base snapshot if untouched)."""
        if table in self._branched and self._branch is not None:
            return self.spark.table(f"{self.name(table)}.branch_{self._branch}")
        return self.read_at(table, base.snapshots[table])

    # --- Writing on a branch -------------------------------------------------------------

    def start(self, branch: str) -> None:
        """Write every table change from now on to `branch` (created per table at its
        first change, at the base snapshot)."""
        self._branch = branch
        self._branched = {}

    def _target(self, table: str, base: Base) -> str:
        assert self._branch is not None, "start() names the branch first"
        if table not in self._branched:
            snapshot = base.snapshots[table]
            change_refs(
                self.spark,
                f"ALTER TABLE {self.name(table)} CREATE OR REPLACE BRANCH {self._branch} "
                f"AS OF VERSION {snapshot}",
            )
            self._branched[table] = snapshot
        return f"{self.name(table)}.branch_{self._branch}"

    def merge_rows(
        self,
        table: StateTable,
        base: Base,
        new_rows: DataFrame,
        old_keys: DataFrame,
        *,
        located_by: Mapping[str, str] | None = None,
    ) -> None:
        """Make the groups this merge touched hold `new_rows`, row by row: rows of
        `old_keys` (the touched groups' keys before the merge) that `new_rows` does not
        hold are deleted, the others updated or inserted, in one MERGE on the branch. For
        the large merge-on-read tables: a merge writes delete files for the rows it
        replaces instead of rewriting the files that hold them.

        `located_by` maps target columns to source columns naming where a row lived
        before (its partition): the MERGE then scans only those partitions.
        """
        key = list(table.key)
        located = dict(located_by or {})
        origins = list(located.values())
        upserts = conform(new_rows, table.columns)
        if origins:
            # Located tables (the lines) have non-null keys: a plain join finds where each
            # upserted row lived before, if it did.
            upserts = upserts.join(old_keys.select(*key, *origins), on=key, how="left")
        deletes = _anti_join(old_keys.select(*key, *origins), upserts.select(*key), key)
        source = upserts.withColumn(_DELETE, F.lit(False)).unionByName(
            deletes.withColumn(_DELETE, F.lit(True)), allowMissingColumns=True
        )
        target = self._target(table.name, base)
        view = f"merge_source_{table.name}"
        source.createOrReplaceTempView(view)
        on = [f"t.`{k}` {'<=>' if k in table.nullable else '='} s.`{k}`" for k in key]
        on += [f"t.`{column}` = s.`{origin}`" for column, origin in located.items()]
        values = [c for c in table.column_names if c not in key]
        self.spark.sql(
            f"MERGE INTO {target} t USING {view} s ON {' AND '.join(on)}\n"
            f"WHEN MATCHED AND s.{_DELETE} THEN DELETE\n"
            f"WHEN MATCHED THEN UPDATE SET {', '.join(f't.`{c}` = s.`{c}`' for c in values)}\n"
            f"WHEN NOT MATCHED AND NOT s.{_DELETE} THEN INSERT "
            f"({', '.join(f'`{c}`' for c in table.column_names)}) "
            f"VALUES ({', '.join(f's.`{c}`' for c in table.column_names)})"
        )
        self.spark.catalog.dropTempView(view)

    def rewrite_rows(
        self,
        table: StateTable,
        base: Base,
        new_rows: DataFrame,
        old_keys: DataFrame,
        scope: Column | None = None,
    ) -> None:
        """Make the groups this merge touched hold `new_rows` by rewriting the rows in
        `scope` (the whole table when None): as they were, less the touched groups'
        (`old_keys`), plus `new_rows`, in one overwrite on the branch. For the small
        copy-on-write tables: one write instead of a MERGE's scan, join and rewrite."""
        key = list(table.key)
        current = self.read_branch(table.name, base)
        if scope is not None:
            current = current.where(scope)
        kept = _anti_join(current, old_keys.select(*key), key)
        rows = conform(kept, table.columns).unionByName(conform(new_rows, table.columns))
        rows.writeTo(self._target(table.name, base)).overwrite(
            scope if scope is not None else F.lit(True)
        )

    def heads(self, base: Base) -> dict[str, int]:
        """Every table's snapshot after this merge: its branch head, or its base snapshot."""
        heads = dict(base.snapshots)
        for table in self._branched:
            refs = self.iceberg_table(table).refs()
            heads[table] = int(refs.get(self._branch).snapshotId())
        return heads

    def drop_branches(self) -> None:
        for table in self._branched:
            change_refs(
                self.spark, f"ALTER TABLE {self.name(table)} DROP BRANCH IF EXISTS {self._branch}"
            )
        self._branched = {}

    # --- Publishing ------------------------------------------------------------------------

    def publish(
        self, publication: Publication, base: Base, execution: str, runs: Sequence[BatchRun]
    ) -> bool:
        """Append the publication's rows (one per merged run, one for a publication that
        merged none), validated against `base`: False (nothing published) when another
        publication landed since `base` was read."""
        common = (publication.seq, publication.published_at, publication.kind)
        snapshots = dict(publication.snapshots)
        merged: list[tuple[object, ...]] = [
            (
                *common,
                run.batch_id,
                run.run_id,
                run.source_event_time,
                run.sequencer,
                run.rerun_at,
                run.pointer_etag,
                execution,
                snapshots,
            )
            for run in runs
        ]
        rows = merged or [(*common, None, None, None, None, None, None, execution, snapshots)]
        row = self.spark.createDataFrame(rows, ddl(PUBLICATIONS.columns))
        writer = row.writeTo(self.name(PUBLICATIONS.name)).option("isolation-level", "serializable")
        if base.publications_snapshot is not None:
            writer = writer.option("validate-from-snapshot-id", str(base.publications_snapshot))
        for key, value in publication.summary().items():
            writer = writer.option(f"snapshot-property.{key}", value)
        try:
            # Every later publication has a greater seq: replacing seq >= ours validates
            # that none was added since the base (and deletes nothing when none was).
            writer.overwrite(F.col("seq") >= F.lit(publication.seq))
        except Exception as e:
            if is_commit_conflict(e):
                return False
            raise
        return True

    def follow_latest(self, attempts: int = 3) -> Publication | None:
        """Move each table's main branch to the latest publication's snapshot, so that
        queries by table name read the published state. Publications moving meanwhile are
        followed too: the last job to finish leaves main on the latest."""
        latest: Publication | None = None
        for _ in range(attempts):
            latest = self.base().publication
            if latest is None:
                return None
            for table, snapshot in sorted(latest.snapshots.items()):
                if self.main_snapshot(table) != snapshot:
                    change_refs(
                        self.spark,
                        f"CALL {self.catalog}.system.set_current_snapshot("
                        f"table => '{self.database}.{table}', snapshot_id => {snapshot})",
                    )
            if self.base().publication == latest:
                break
        return latest
