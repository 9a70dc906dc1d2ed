"""The current state: its Iceberg tables, the publications readers pin, the rule of one merge.

After every published batch the state job (glue_jobs/maintain_state.py) merges the batch's
published run into Iceberg tables in the Glue Data Catalog (docs/adr/0045):

- `order_lines_current` holds the current version of every line key; the report tables
  (`client_report`, `client_orders`, `client_order_cells`, `product_daily`,
  `status_daily`, `spanning_order_cells`, `orders_summary`) hold the figures the API reads
  at the grain its routes filter on.
- A merge takes in every batch whose published run the state does not hold yet (its own
  and any other published meanwhile), writes all the tables on a branch of its own, then
  publishes them with one Iceberg commit: rows appended to `state_publications`, one per
  batch run it merged, whose snapshot summary names the snapshot of every state table. The
  latest publication of each batch is the run the state holds for it. The append is
  validated against the publication the merge started from, so of two merges started on
  one publication only one lands; the other starts again on the new one (often to find
  that the first took its batch in too). Readers pin a publication's snapshots, so a
  request never sees one table of one publication and another of the next.

Everything here is pure: table definitions, the publication record and the planning rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from duffbeer import contract, manifest, naming, utc

Columns = tuple[tuple[str, str], ...]

CURRENT_LINES_TABLE = "order_lines_current"
CLIENT_REPORT_TABLE = "client_report"
CLIENT_ORDERS_TABLE = "client_orders"
CLIENT_ORDER_CELLS_TABLE = "client_order_cells"
PRODUCT_DAILY_TABLE = "product_daily"
STATUS_DAILY_TABLE = "status_daily"
SPANNING_ORDER_CELLS_TABLE = "spanning_order_cells"
ORDERS_SUMMARY_TABLE = "orders_summary"
PUBLICATIONS_TABLE = "state_publications"

# One client's rows of the per-client tables live in one of this many Iceberg buckets
# (bucket(n, client_id)): Athena reads that bucket's files only.
CLIENT_BUCKETS = 64


@dataclass(frozen=True)
class StateTable:
    """One Iceberg table of the state."""

    name: str
    columns: Columns
    # A row's identity: a merge replaces the rows of the groups it touches by these columns
    # (compared null-safe: a totals row has null status and channel).
    key: tuple[str, ...]
    # Key columns that are null in some rows (a totals row has no status).
    nullable: frozenset[str] = frozenset()
    # Iceberg partition transforms.
    partitioned_by: tuple[str, ...] = ()
    # The sort order of the table's files: min/max statistics then skip whole files.
    ordered_by: tuple[str, ...] = ()
    # Row-level changes as position delete files (merge-on-read) rather than rewritten data
    # files (copy-on-write): the large tables, whose merges touch few rows of many files.
    merge_on_read: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


_CLIENT_BUCKET = f"bucket({CLIENT_BUCKETS}, client_id)"
_CELL = ("point_of_sale_channel", "order_date")

STATE_TABLES: dict[str, StateTable] = {
    table.name: table
    for table in (
        StateTable(
            CURRENT_LINES_TABLE,
            (*contract.CURATED_DATA_COLUMNS, *contract.CURATED_PARTITION_COLUMNS),
            key=contract.LINE_KEY,
            partitioned_by=("point_of_sale_channel", "days(order_date)"),
            ordered_by=("client_id", "order_id"),
            merge_on_read=True,
        ),
        StateTable(
            CLIENT_REPORT_TABLE,
            contract.CLIENT_REPORT_COLUMNS,
            key=("client_id", "status", "point_of_sale_channel", "all_statuses", "all_channels"),
            nullable=frozenset({"status", "point_of_sale_channel"}),
            partitioned_by=(_CLIENT_BUCKET,),
            ordered_by=("client_id",),
            merge_on_read=True,
        ),
        StateTable(
            CLIENT_ORDERS_TABLE,
            contract.CLIENT_ORDERS_COLUMNS,
            key=("client_id", "order_id"),
            partitioned_by=(_CLIENT_BUCKET,),
            ordered_by=("client_id", "order_id"),
            merge_on_read=True,
        ),
        StateTable(
            PRODUCT_DAILY_TABLE,
            contract.PRODUCT_DAILY_COLUMNS,
            key=("product_id", *_CELL),
            partitioned_by=("months(order_date)",),
            ordered_by=("point_of_sale_channel", "order_date", "product_id"),
        ),
        StateTable(
            STATUS_DAILY_TABLE,
            contract.STATUS_DAILY_COLUMNS,
            key=("status", *_CELL, "all_statuses"),
            nullable=frozenset({"status"}),
            partitioned_by=("months(order_date)",),
            ordered_by=("point_of_sale_channel", "order_date"),
        ),
        StateTable(
            SPANNING_ORDER_CELLS_TABLE,
            contract.SPANNING_ORDER_CELLS_COLUMNS,
            key=("order_id", "status", *_CELL),
            nullable=frozenset({"status"}),
            ordered_by=("order_id",),
        ),
        StateTable(
            ORDERS_SUMMARY_TABLE,
            contract.ORDERS_SUMMARY_COLUMNS,
            key=("client_id",),
            ordered_by=("client_id",),
        ),
        StateTable(
            CLIENT_ORDER_CELLS_TABLE,
            contract.CLIENT_ORDER_CELLS_COLUMNS,
            key=("client_id", "order_id", *_CELL),
            partitioned_by=(_CLIENT_BUCKET,),
            ordered_by=("order_date", "client_id"),
            merge_on_read=True,
        ),
    )
}

# One row per batch run a publication merged (one row with no batch for a maintenance
# publication): the fields that order the runs of a batch, the batch pointer's ETag when
# it was read, and the snapshot of every state table.
PUBLICATIONS_COLUMNS: Columns = (
    ("seq", "bigint"),
    ("published_at", "timestamp"),
    ("kind", "string"),
    ("batch_id", "string"),
    ("run_id", "string"),
    ("source_event_time", "timestamp"),
    ("source_sequencer", "string"),
    ("rerun_at", "string"),
    ("pointer_etag", "string"),
    ("execution", "string"),
    ("snapshots", "map<string,bigint>"),
)
PUBLICATIONS = StateTable(PUBLICATIONS_TABLE, PUBLICATIONS_COLUMNS, key=("seq",))

# What a publication merged: a batch's run, or nothing (table maintenance).
KIND_MERGE = "merge"
KIND_MAINTENANCE = "maintenance"

# Keys of the publication commit's snapshot summary: a reader finds the latest publication
# and every table's snapshot from the publications table's metadata alone.
SUMMARY_SEQ = "duffbeer.seq"
SUMMARY_KIND = "duffbeer.kind"
# The batch runs merged, as a JSON object batch id -> run id.
SUMMARY_MERGED = "duffbeer.merged"
SUMMARY_SNAPSHOT_PREFIX = "duffbeer.snapshot."


@dataclass(frozen=True)
class Publication:
    """One publication of the state: the snapshot of every state table readers pin, and
    the batch runs it merged (batch id -> run id)."""

    seq: int
    published_at: datetime
    kind: str
    snapshots: Mapping[str, int]
    merged: Mapping[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, str]:
        """The snapshot-summary properties of the commit that publishes it."""
        return {
            SUMMARY_SEQ: str(self.seq),
            SUMMARY_KIND: self.kind,
            SUMMARY_MERGED: json.dumps(dict(sorted(self.merged.items()))),
            **{f"{SUMMARY_SNAPSHOT_PREFIX}{t}": str(s) for t, s in sorted(self.snapshots.items())},
        }


@dataclass(frozen=True)
class SnapshotInfo:
    """What a reader needs of one snapshot of the publications table."""

    snapshot_id: int
    timestamp_ms: int
    summary: Mapping[str, str]


def publication_of(snapshot: SnapshotInfo) -> Publication | None:
    """The publication a snapshot of the publications table commits (None: not one, such
    as the table's empty first snapshot)."""
    summary = snapshot.summary
    if SUMMARY_SEQ not in summary:
        return None
    snapshots = {
        key[len(SUMMARY_SNAPSHOT_PREFIX) :]: int(value)
        for key, value in summary.items()
        if key.startswith(SUMMARY_SNAPSHOT_PREFIX)
    }
    return Publication(
        seq=int(summary[SUMMARY_SEQ]),
        published_at=datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC),
        kind=summary.get(SUMMARY_KIND, KIND_MERGE),
        snapshots=snapshots,
        merged=json.loads(summary.get(SUMMARY_MERGED, "{}")),
    )


def publications(snapshots: Iterable[SnapshotInfo]) -> list[Publication]:
    """The retained publications, oldest first."""
    found = (publication_of(s) for s in snapshots)
    return sorted((p for p in found if p is not None), key=lambda p: p.seq)


def as_of(published: Sequence[Publication], instant: datetime | None) -> Publication | None:
    """The publication readers saw at `instant` (the latest at or before it; None before the
    first), or the latest one when `instant` is None."""
    candidates = [p for p in published if instant is None or p.published_at <= instant]
    return candidates[-1] if candidates else None


def merged_at(published: Iterable[Publication]) -> dict[tuple[str, str], datetime]:
    """When each batch run entered the reports: (batch id, run id) -> the time of the first
    retained publication that merged it (`as_of` that instant shows the reports with it)."""
    entered: dict[tuple[str, str], datetime] = {}
    for publication in sorted(published, key=lambda p: p.seq):
        for batch_id, run_id in publication.merged.items():
            entered.setdefault((batch_id, run_id), publication.published_at)
    return entered


# --- The merge rule ------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRun:
    """A run of a batch: the published one (from the batch pointer) or the one the state
    holds (from its latest publication)."""

    batch_id: str
    run_id: str
    source_event_time: datetime
    sequencer: str
    rerun_at: str
    # The batch pointer's ETag when the run was read from it: a merge re-reads only the
    # pointers whose ETag moved since the state took them in.
    pointer_etag: str = ""

    @property
    def lines_prefix(self) -> str:
        return naming.run_lines_prefix(self.batch_id, self.run_id)

    @property
    def order(self) -> manifest.RunOrder:
        return manifest.run_order(
            self.run_id, utc.iso(self.source_event_time), self.sequencer, self.rerun_at
        )

    @classmethod
    def published_in(cls, pointer: manifest.Manifest, etag: str = "") -> BatchRun | None:
        """The run a batch pointer publishes (None when it publishes none)."""
        published = manifest.published_block(pointer)
        if published is None:
            return None
        source = pointer["source"]
        return cls(
            batch_id=pointer["batch_id"],
            run_id=published["run_id"],
            source_event_time=utc.parse(published["source_event_time"]),
            sequencer=source.get("sequencer") or "",
            rerun_at=source.get("rerun_at") or "",
            pointer_etag=etag,
        )


def held_runs(rows: Iterable[Mapping[str, Any]]) -> dict[str, BatchRun]:
    """Per batch, the run the state holds: the one the latest merge publication that took
    the batch in merged (`rows`: the publications table's rows)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        batch_id = row["batch_id"]
        if row["kind"] != KIND_MERGE or batch_id is None:
            continue
        if batch_id not in latest or latest[batch_id]["seq"] < row["seq"]:
            latest[batch_id] = row
    return {
        batch_id: BatchRun(
            batch_id=batch_id,
            run_id=row["run_id"],
            source_event_time=row["source_event_time"],
            sequencer=row["source_sequencer"] or "",
            rerun_at=row["rerun_at"] or "",
            pointer_etag=row["pointer_etag"] or "",
        )
        for batch_id, row in sorted(latest.items())
    }


@dataclass(frozen=True)
class MergePlan:
    """What one merge does: take in the batches' published runs (`changes`), withdrawing
    the lines of the runs the state held for them (`withdrawn`)."""

    changes: tuple[BatchRun, ...]
    withdrawn: tuple[BatchRun, ...]

    @property
    def merged(self) -> dict[str, str]:
        return {run.batch_id: run.run_id for run in self.changes}


def plan_merge(held: Mapping[str, BatchRun], published: Iterable[BatchRun]) -> MergePlan | None:
    """The merge that brings the state to the published runs, or None when it holds each
    of them already, or a later run of its batch (a merge that read an older pointer must
    never move the state back)."""
    changes = tuple(
        sorted(
            (
                run
                for run in published
                if run.batch_id not in held or held[run.batch_id].order < run.order
            ),
            key=lambda run: run.batch_id,
        )
    )
    if not changes:
        return None
    withdrawn = tuple(held[run.batch_id] for run in changes if run.batch_id in held)
    return MergePlan(changes=changes, withdrawn=withdrawn)
