"""The batch manifest: the JSON document that describes a run and publishes a batch.

The Glue job writes `runs/<batch_id>/<run_id>/_manifest.json` last, whatever the run's
outcome; its `published` block is empty. The Store step publishes a successful run by
writing the batch pointer `manifests/<batch_id>.json`: the run's manifest with `published`
describing it (`publish`). Readers only use the pointer's `published` block, so a failed
or superseded run never hides the last good version of the batch. Paths inside a manifest
are keys relative to the output root (the processed bucket), so the same manifest is valid
locally and on S3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from duffbeer import utc
from duffbeer.errors import BatchNotPublishedError
from duffbeer.naming import STATUS_FAILED, STATUS_SUCCEEDED

MANIFEST_VERSION = 1

# What the Store step does with a successful run (publication_decision).
PUBLISH = "published"
ALREADY_PUBLISHED = "already_published"
# A newer upload of the same key is published: the run stays unpublished (ADR 0009).
SUPERSEDED = "superseded"


class SourceObject(TypedDict):
    path: str  # the input as given to the job (s3://bucket/key or a local path)
    bucket: NotRequired[str | None]
    key: NotRequired[str | None]
    etag: NotRequired[str | None]
    version_id: NotRequired[str | None]
    size: int | None
    event_time: str  # ISO-8601 UTC; orders batches for the current-state rules
    # S3's per-key order of uploads created in the same millisecond (hex; "" if unknown).
    sequencer: NotRequired[str | None]
    # When a run was started by hand on an upload already processed (ISO-8601 UTC).
    rerun_at: NotRequired[str | None]


class Partition(TypedDict):
    point_of_sale_channel: str
    order_date: str  # YYYY-MM-DD
    location: str  # key prefix relative to the output root, ending with "/"
    rows: int


class Outputs(TypedDict):
    order_lines: str  # prefix of the partitioned curated lines
    reports: dict[str, str]  # report name (naming.BATCH_REPORTS) -> prefix
    rejects: str


class Published(TypedDict):
    run_id: str
    published_at: str
    source_event_time: str
    partitions: list[Partition]
    outputs: Outputs
    rows_valid: int
    total_sales: str


class ErrorInfo(TypedDict):
    type: str  # a class name from duffbeer.errors
    message: str


class Manifest(TypedDict):
    manifest_version: int
    batch_id: str
    run_id: str
    status: str  # SUCCEEDED | FAILED
    error: ErrorInfo | None
    source: SourceObject
    ingest_date: str
    started_at: str
    finished_at: str
    timings: dict[str, float]
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rejects_by_reason: dict[str, int]
    duplicates: int
    total_sales: str  # exact decimal as text
    total_units: int
    partitions: list[Partition]
    outputs: Outputs | None
    warnings: list[str]
    published: Published | None


def dumps(manifest: Manifest) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True)


def loads(text: str | bytes) -> Manifest:
    """Parse a manifest and check the fields every consumer relies on."""
    data: Any = json.loads(text)
    missing = [f for f in ("batch_id", "run_id", "status", "published") if f not in data]
    if missing:
        raise BatchNotPublishedError(f"manifest is missing fields {missing}")
    if data["status"] not in (STATUS_SUCCEEDED, STATUS_FAILED):
        raise BatchNotPublishedError(f"manifest has unknown status {data['status']!r}")
    manifest: Manifest = data
    return manifest


def publish(run: Manifest, published_at: str) -> Manifest:
    """The batch pointer that publishes a successful run."""
    if run["status"] != STATUS_SUCCEEDED or run["outputs"] is None:
        raise BatchNotPublishedError(
            f"run {run['run_id']} of batch {run['batch_id']} ended {run['status']}: "
            "only a successful run is published"
        )
    published = Published(
        run_id=run["run_id"],
        published_at=published_at,
        source_event_time=run["source"]["event_time"],
        partitions=run["partitions"],
        outputs=run["outputs"],
        rows_valid=run["rows_valid"],
        total_sales=run["total_sales"],
    )
    return {**run, "published": published}


# S3 sequencers have different lengths: AWS compares them right-padded with zeros.
_SEQUENCER_WIDTH = 64


@dataclass(frozen=True, order=True)
class RunOrder:
    """Where a run stands among the runs of its batch, oldest first: when its upload was
    created (the S3 event time, then S3's sequencer, which orders uploads of one key made in
    the same millisecond), then when it was re-run by hand ("" for the upload's own run),
    then its run id. A total order: two runs never tie, so publishing only runs that order
    after the published one can never move a batch back to a run that was replaced."""

    event_time: datetime
    sequencer: str
    rerun_at: str
    run_id: str


def run_order(
    run_id: str, event_time: str, sequencer: str | None = None, rerun_at: str | None = None
) -> RunOrder:
    return RunOrder(
        event_time=utc.parse(event_time),
        sequencer=(sequencer or "").upper().ljust(_SEQUENCER_WIDTH, "0"),
        rerun_at=utc.iso(utc.parse(rerun_at)) if rerun_at else "",
        run_id=run_id,
    )


def order_of(run: Manifest) -> RunOrder:
    """The order of the run a manifest (or a batch pointer) describes."""
    source = run["source"]
    return run_order(
        run["run_id"], source["event_time"], source.get("sequencer"), source.get("rerun_at")
    )


def publication_decision(pointer: Manifest | None, run: Manifest) -> str:
    """Whether a successful run replaces the batch's publication: PUBLISH when nothing is
    published or the run orders after the published one (RunOrder), ALREADY_PUBLISHED when it
    is the published run, SUPERSEDED when it orders before it."""
    published = pointer.get("published") if pointer is not None else None
    if pointer is None or published is None:
        return PUBLISH
    if published["run_id"] == run["run_id"]:
        return ALREADY_PUBLISHED
    return PUBLISH if order_of(run) > order_of(pointer) else SUPERSEDED


def published_block(manifest: Manifest) -> Published | None:
    """What readers should see of this batch (None: nothing published yet)."""
    return manifest.get("published")
