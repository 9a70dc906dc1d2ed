"""Iceberg's own upkeep of the state's tables: compaction, expired snapshots, orphan files.

1. Compaction. Merges leave small files and, in the merge-on-read tables, position delete
   files that every read applies. `rewrite_data_files` (and `rewrite_position_delete_files`)
   rewrite them on main, which then holds the same rows in fewer files; the rewritten
   snapshots are published like a merge (a `maintenance` publication validated against the
   one they were made from). If a merge published meanwhile, the compaction is dropped:
   main moves to that merge's publication and the next run compacts again.
2. Snapshots. Publications older than the retention period leave the time-travel history
   (the latest always stays), then every table's snapshots that no retained publication
   names and that are older than the period are expired, with the files only they held.
   Branches of merges that stopped without publishing are dropped once stale.
3. Orphan files. Files under a table's location that no snapshot names (a merge that failed
   after writing) are removed once older than the orphan period, which is longer than any
   job or query runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from duffbeer import aws, state, utc
from duffbeer.state import KIND_MAINTENANCE, PUBLICATIONS, STATE_TABLES, Publication
from glue_jobs.orders.logs import JobLogger
from glue_jobs.state.args import MaintenanceArgs
from glue_jobs.state.catalog import StateCatalog, change_refs

Clock = Callable[[], datetime]

# A table is compacted when its files average less than this, or when it has delete files.
SMALL_FILE_BYTES = 32 * 1024**2
# ... and only when it has at least this many data files (one small file is not a problem).
MIN_FILES_TO_COMPACT = 4
_MERGE_BRANCH = re.compile(r"^merge_")


def needs_compaction(summary: Mapping[str, str]) -> bool:
    """Whether a table's current snapshot (its summary's totals) is worth compacting."""
    data_files = int(summary.get("total-data-files", 0))
    delete_files = int(summary.get("total-delete-files", 0))
    size = int(summary.get("total-files-size", 0))
    if delete_files:
        return True
    return data_files >= MIN_FILES_TO_COMPACT and size / data_files < SMALL_FILE_BYTES


def expirable(
    snapshots: Iterable[tuple[int, datetime]], keep: set[int], cutoff: datetime
) -> list[int]:
    """The snapshots to expire: older than `cutoff` and not kept."""
    return sorted(sid for sid, taken in snapshots if taken < cutoff and sid not in keep)


def _timestamp(moment: datetime) -> str:
    """A Spark SQL timestamp literal (the session's time zone is UTC)."""
    return f"TIMESTAMP '{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}'"


@dataclass
class MaintenanceFacts:
    compacted: list[str] = field(default_factory=list)
    published_seq: int | None = None
    dropped_branches: list[str] = field(default_factory=list)
    expired_snapshots: dict[str, int] = field(default_factory=dict)
    orphan_files: dict[str, int] = field(default_factory=dict)


class TableMaintenance:
    """One maintenance run over every table of the state."""

    def __init__(
        self,
        args: MaintenanceArgs,
        spark: SparkSession,
        log: JobLogger,
        *,
        clock: Clock = utc.now,
        s3: Any | None = None,
    ) -> None:
        self.args = args
        self.spark = spark
        self.log = log
        self.clock = clock
        self._s3 = s3
        self.catalog = StateCatalog(spark, args.database)
        self.facts = MaintenanceFacts()

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws.client("s3")
        return self._s3

    def _call(self, procedure: str, arguments: str) -> list[Any]:
        return self.spark.sql(
            f"CALL {self.catalog.catalog}.system.{procedure}({arguments})"
        ).collect()

    def _table(self, name: str) -> str:
        return f"table => '{self.args.database}.{name}'"

    def run(self) -> MaintenanceFacts:
        self.catalog.ensure_tables()
        self.catalog.follow_latest()
        self.compact()
        self.drop_stale_branches()
        self.expire_snapshots()
        self.remove_orphan_files()
        self.log.info("tables maintained", fields={"facts": self.facts.__dict__})
        return self.facts

    def compact(self) -> None:
        base = self.catalog.base()
        if base.publication is None:
            return
        rewritten: dict[str, int] = {}
        published = base.publication.snapshots
        for table in STATE_TABLES.values():
            if table.name not in published:
                # Added by a later release: the next merge builds it from the current lines.
                continue
            current = self.catalog.iceberg_table(table.name).currentSnapshot()
            if current is None or current.snapshotId() != base.snapshots[table.name]:
                return  # main is not on the latest publication: a merge is publishing
            if not needs_compaction(dict(current.summary())):
                continue
            self._call(
                "rewrite_data_files",
                f"{self._table(table.name)}, options => map("
                f"'min-input-files', '2', 'delete-file-threshold', '1')",
            )
            if table.merge_on_read:
                self._call(
                    "rewrite_position_delete_files",
                    f"{self._table(table.name)}, options => map('rewrite-all', 'true')",
                )
            snapshot = self.catalog.main_snapshot(table.name)
            if snapshot is not None and snapshot != base.snapshots[table.name]:
                rewritten[table.name] = snapshot
        if not rewritten:
            return
        publication = Publication(
            seq=base.next_seq,
            published_at=self.clock(),
            kind=KIND_MAINTENANCE,
            snapshots={**published, **rewritten},
        )
        if self.catalog.publish(publication, base, self.args.job_name, ()):
            self.facts.compacted = sorted(rewritten)
            self.facts.published_seq = publication.seq
        else:
            self.log.info("a merge published during compaction; compaction dropped")
        self.catalog.follow_latest()

    def drop_stale_branches(self) -> None:
        """Branches of merges that stopped before publishing (a killed job)."""
        horizon = self.clock() - timedelta(hours=self.args.stale_branch_hours)
        for table in STATE_TABLES:
            java_table = self.catalog.iceberg_table(table)
            refs = java_table.refs()
            for name in list(refs.keySet()):
                if not _MERGE_BRANCH.match(name):
                    continue
                head = java_table.snapshot(refs.get(name).snapshotId())
                if datetime.fromtimestamp(head.timestampMillis() / 1000, UTC) < horizon:
                    change_refs(
                        self.spark,
                        f"ALTER TABLE {self.catalog.name(table)} DROP BRANCH IF EXISTS {name}",
                    )
                    self.facts.dropped_branches.append(f"{table}.{name}")

    def expire_snapshots(self) -> None:
        """Publications older than the retention leave the history, then the snapshots no
        retained publication names (and no branch holds) go with their files."""
        cutoff = self.clock() - timedelta(hours=self.args.snapshot_retention_hours)
        self._call(
            "expire_snapshots",
            f"{self._table(PUBLICATIONS.name)}, older_than => {_timestamp(cutoff)}, "
            "retain_last => 1",
        )
        publications = self.catalog.iceberg_table(PUBLICATIONS.name)
        retained = state.publications(
            state.SnapshotInfo(int(s.snapshotId()), int(s.timestampMillis()), dict(s.summary()))
            for s in publications.snapshots()
        )
        for table in STATE_TABLES:
            java_table = self.catalog.iceberg_table(table)
            keep = {p.snapshots[table] for p in retained if table in p.snapshots}
            refs = java_table.refs()
            keep |= {int(refs.get(name).snapshotId()) for name in refs.keySet()}
            doomed = expirable(
                (
                    (
                        int(s.snapshotId()),
                        datetime.fromtimestamp(s.timestampMillis() / 1000, UTC),
                    )
                    for s in java_table.snapshots()
                ),
                keep,
                cutoff,
            )
            if doomed:
                # older_than at the epoch: only the snapshots listed go.
                self._call(
                    "expire_snapshots",
                    f"{self._table(table)}, older_than => TIMESTAMP '1970-01-02 00:00:00', "
                    f"snapshot_ids => array({', '.join(str(s) for s in doomed)})",
                )
                self.facts.expired_snapshots[table] = len(doomed)

    def remove_orphan_files(self) -> None:
        """Files no snapshot names, older than the orphan period. The files are listed with
        S3's API (the same on Glue and locally), then handed to Iceberg's procedure."""
        # Iceberg refuses a cut-off within a day of its own clock, whatever ours says.
        now = min(self.clock(), utc.now())
        older_than = now - timedelta(hours=self.args.orphan_retention_hours)
        for table in (*STATE_TABLES, PUBLICATIONS.name):
            location = str(self.catalog.iceberg_table(table).location()).rstrip("/") + "/"
            parsed = urlparse(location)
            rows = [
                (f"{parsed.scheme}://{parsed.netloc}/{item['Key']}", item["LastModified"])
                for page in self.s3.get_paginator("list_objects_v2").paginate(
                    Bucket=parsed.netloc, Prefix=parsed.path.lstrip("/")
                )
                for item in page.get("Contents", [])
            ]
            view = f"files_of_{table}"
            self.spark.createDataFrame(
                rows, "file_path string, last_modified timestamp"
            ).createOrReplaceTempView(view)
            removed = self._call(
                "remove_orphan_files",
                f"{self._table(table)}, older_than => {_timestamp(older_than)}, "
                f"file_list_view => '{view}'",
            )
            self.spark.catalog.dropTempView(view)
            if removed:
                self.facts.orphan_files[table] = len(removed)
