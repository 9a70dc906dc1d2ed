"""The maintained current state: its tables, versions, pointer, version manifest and merge plan.

After every published batch the pipeline keeps the current version of every line and the
report tables the API reads (docs/adr/0015). The state moves forward in versions:

1. PlanState compares the batch pointers (`manifests/*.json`) with the live batches of the
   current version and writes a merge plan (`state/plans/<version>.json`) when they differ.
2. The MergeState Glue job writes the new version's changed partitions and small tables
   under `state/versions/<version>/`, then its version manifest (`_state.json`) last. A
   version reuses the partitions a batch did not touch from the versions that wrote them.
3. PublishState registers the version's tables in the versions database and publishes the
   version with one conditional PUT of `state/current.json` (If-Match the pointer the plan
   was based on): readers see the state before or after a batch, never a mix.

Everything here is pure: documents, names and the planning rule. Keys are relative to the
processed bucket, as in the batch manifests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict

from duffbeer import contract, naming, utc
from duffbeer.errors import StateNotPublishedError

Columns = tuple[tuple[str, str], ...]

STATE_FORMAT = 1

CURRENT_LINES_TABLE = "order_lines_current"
CLIENT_REPORT_TABLE = "client_report"
CLIENT_ORDERS_TABLE = "client_orders"
PRODUCT_DAILY_TABLE = "product_daily"
STATUS_DAILY_TABLE = "status_daily"
SPANNING_ORDER_CELLS_TABLE = "spanning_order_cells"
ORDERS_SUMMARY_TABLE = "orders_summary"

# Buckets of the per-client tables and of the current lines' partitions. Both are fixed for
# the life of a state: a version reuses earlier versions' partitions, which must agree.
DEFAULT_CLIENT_BUCKETS = 64
DEFAULT_LINE_BUCKETS = 4


@dataclass(frozen=True)
class StateTable:
    """One table of a state version: its columns, partition keys and bucketing."""

    name: str
    columns: Columns
    partition_keys: Columns = ()
    # Spark bucketing inside each partition (Athena: 'bucketing_format' = 'spark').
    bucket_column: str | None = None

    @property
    def partitioned(self) -> bool:
        return bool(self.partition_keys)


STATE_TABLES: dict[str, StateTable] = {
    table.name: table
    for table in (
        StateTable(
            CURRENT_LINES_TABLE,
            contract.CURATED_DATA_COLUMNS,
            contract.CURATED_PARTITION_COLUMNS,
            bucket_column=contract.CURRENT_LINES_BUCKET_COLUMN,
        ),
        StateTable(
            CLIENT_REPORT_TABLE, contract.CLIENT_REPORT_COLUMNS, contract.CLIENT_BUCKET_PARTITION
        ),
        StateTable(
            CLIENT_ORDERS_TABLE, contract.CLIENT_ORDERS_COLUMNS, contract.CLIENT_BUCKET_PARTITION
        ),
        StateTable(PRODUCT_DAILY_TABLE, contract.PRODUCT_DAILY_COLUMNS),
        StateTable(STATUS_DAILY_TABLE, contract.STATUS_DAILY_COLUMNS),
        StateTable(SPANNING_ORDER_CELLS_TABLE, contract.SPANNING_ORDER_CELLS_COLUMNS),
        StateTable(ORDERS_SUMMARY_TABLE, contract.ORDERS_SUMMARY_COLUMNS),
    )
}

_VERSION = re.compile(r"^(\d{10})-([0-9a-f]{8})$")
_TOKEN = re.compile(r"^[0-9a-f]{8}$")


def version_id(seq: int, token: str) -> str:
    """A version id: its sequence number (sortable) and a token unique to the plan."""
    if seq < 0 or seq >= 10**10 or not _TOKEN.match(token):
        raise ValueError(f"cannot make a version id of seq {seq} and token {token!r}")
    return f"{seq:010d}-{token}"


def version_seq(version: str) -> int:
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a state version id")
    return int(match.group(1))


def is_version_id(text: str) -> bool:
    return _VERSION.match(text) is not None


def versioned_table(table: str, version: str) -> str:
    """The Glue name of one table of one version, in the versions database."""
    version_seq(version)
    return f"{table}_v{version.replace('-', '_')}"


def client_bucket(client_id: int, buckets: int) -> int:
    """The client_bucket partition of a client: client_id modulo the bucket count, never
    negative (the job computes it with Spark's pmod)."""
    return client_id % buckets


def table_prefix(version: str, table: str) -> str:
    """Where a version writes a table (or the partitions of it that it rewrites)."""
    return f"{naming.state_version_prefix(version)}{table}/"


# --- Documents ----------------------------------------------------------------------------


class StateSettings(TypedDict):
    line_buckets: int
    client_buckets: int


class LiveBatch(TypedDict):
    """A published batch as the state reflects it."""

    run_id: str
    source_event_time: str  # ISO-8601 UTC of the upload: orders versions across batches
    lines_prefix: str  # the run's curated lines (runs/<batch>/<run>/order_lines/)
    manifest_etag: NotRequired[str]  # the batch pointer's ETag when the state read it


class PartitionLocation(TypedDict):
    values: dict[str, str]  # partition column -> value, as text (dates as YYYY-MM-DD)
    location: str  # key prefix ending with "/"
    rows: int


class TableLocation(TypedDict):
    """An unpartitioned table's prefix, or a partitioned table's partitions."""

    rows: int
    location: NotRequired[str]
    partitions: NotRequired[list[PartitionLocation]]


class MergeFacts(TypedDict):
    changed_batches: list[str]
    withdrawn_batches: list[str]
    touched_partitions: int
    touched_orders: int
    fallback_lines: int
    timings: dict[str, float]


class StateManifest(TypedDict):
    """`state/versions/<version>/_state.json`: what a version holds, written last by the job."""

    state_format: int
    version: str
    seq: int
    base_version: str | None
    created_at: str
    run_id: str  # the execution that planned the version
    settings: StateSettings
    batches: dict[str, LiveBatch]
    tables: dict[str, TableLocation]
    counts: dict[str, int]  # lines, orders, clients
    merge: MergeFacts


class PlanBase(TypedDict):
    version: str
    seq: int
    pointer_etag: str
    state_manifest: str


class BatchChange(TypedDict):
    batch_id: str
    run_id: str
    source_event_time: str
    lines_prefix: str


class MergePlan(TypedDict):
    """`state/plans/<version>.json`: the merge the job must carry out, decided by PlanState."""

    plan_format: int
    version: str
    seq: int
    created_at: str
    run_id: str
    base: PlanBase | None
    # Batches whose published run the base does not hold yet (new, or a newer upload).
    changes: list[BatchChange]
    # Batches whose lines in the base go away: replaced by a change, or no longer published.
    withdrawn: list[str]
    # The live batches the new version reflects (base batches updated by the changes).
    batches: dict[str, LiveBatch]
    settings: StateSettings


class Publication(TypedDict):
    version: str
    published_at: str
    superseded_at: str


class StatePointer(TypedDict):
    """`state/current.json`: the published version. Readers start here."""

    pointer_format: int
    version: str
    seq: int
    published_at: str
    state_manifest: str
    settings: StateSettings
    # Earlier versions, newest first, kept while a reader may still be using them.
    history: list[Publication]


def dumps(document: StateManifest | MergePlan | StatePointer) -> str:
    return json.dumps(document, indent=2, sort_keys=True)


def _load(text: str | bytes, required: tuple[str, ...], what: str) -> Any:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise StateNotPublishedError(f"{what} is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise StateNotPublishedError(f"{what} is not a JSON object")
    missing = [name for name in required if name not in data]
    if missing:
        raise StateNotPublishedError(f"{what} is missing fields {missing}")
    if not is_version_id(str(data["version"])):
        raise StateNotPublishedError(f"{what} names version {data['version']!r}")
    return data


def loads_manifest(text: str | bytes) -> StateManifest:
    data: StateManifest = _load(
        text, ("version", "seq", "settings", "batches", "tables"), "state manifest"
    )
    return data


def loads_plan(text: str | bytes) -> MergePlan:
    data: MergePlan = _load(
        text, ("version", "seq", "base", "changes", "withdrawn", "batches", "settings"), "plan"
    )
    return data


def loads_pointer(text: str | bytes) -> StatePointer:
    data: StatePointer = _load(
        text, ("version", "seq", "state_manifest", "settings", "history"), "state pointer"
    )
    return data


# --- Rules ---------------------------------------------------------------------------------


def plan_merge(
    *,
    base: StateManifest | None,
    base_pointer_etag: str | None,
    published: dict[str, LiveBatch],
    run_id: str,
    token: str,
    now: datetime,
    settings: StateSettings,
) -> MergePlan | None:
    """The merge that brings the state from `base` to the batches published now, or None
    when the base already reflects every published batch.

    `published` holds every batch pointer's published run. A batch of the base whose run
    differs (a newer upload of its key) is both withdrawn and changed; one that is no longer
    published at all is only withdrawn; a newly published batch is only changed. The new
    version keeps the base's bucket settings: its unchanged partitions come from the base.
    """
    base_batches: dict[str, LiveBatch] = base["batches"] if base is not None else {}

    def run_of(batches: dict[str, LiveBatch], batch_id: str) -> str | None:
        live = batches.get(batch_id)
        return live["run_id"] if live is not None else None

    changes = [
        BatchChange(
            batch_id=batch_id,
            run_id=live["run_id"],
            source_event_time=live["source_event_time"],
            lines_prefix=live["lines_prefix"],
        )
        for batch_id, live in sorted(published.items())
        if run_of(base_batches, batch_id) != live["run_id"]
    ]
    withdrawn = sorted(
        batch_id
        for batch_id, live in base_batches.items()
        if run_of(published, batch_id) != live["run_id"]
    )
    if not changes and not withdrawn:
        return None
    plan_base: PlanBase | None = None
    seq = 1
    if base is not None:
        if base_pointer_etag is None:
            raise StateNotPublishedError("a plan on a base version needs the pointer's ETag")
        plan_base = PlanBase(
            version=base["version"],
            seq=base["seq"],
            pointer_etag=base_pointer_etag,
            state_manifest=naming.state_manifest_key(base["version"]),
        )
        seq = base["seq"] + 1
        settings = base["settings"]
    return MergePlan(
        plan_format=STATE_FORMAT,
        version=version_id(seq, token),
        seq=seq,
        created_at=utc.iso(now),
        run_id=run_id,
        base=plan_base,
        changes=changes,
        withdrawn=withdrawn,
        batches=dict(sorted(published.items())),
        settings=settings,
    )


def next_history(
    previous: StatePointer | None, now: datetime, keep_for: timedelta
) -> list[Publication]:
    """The history of a new pointer: the previous version (superseded now) and the earlier
    entries still within `keep_for` of being superseded."""
    if previous is None:
        return []
    entries = [
        Publication(
            version=previous["version"],
            published_at=previous["published_at"],
            superseded_at=utc.iso(now),
        ),
        *previous["history"],
    ]
    horizon = now - keep_for
    return [e for e in entries if utc.parse(e["superseded_at"]) >= horizon]
