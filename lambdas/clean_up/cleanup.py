"""Delete the runs of a batch that nothing can publish or read any more.

Runs after the Catalog step, so the catalog and the state already name the batch's
published run. A run of the batch goes when

- it orders before the published run (duffbeer.manifest.RunOrder): publication only moves
  to runs that order after the published one, so such a run can never be published again;
  it still waits until the publication is older than the reader grace period, as a query
  or a merge that started on it may still read its files;
- it failed, or it has no run manifest (a crashed job), and it was last written more than
  the orphan grace period ago: its execution has long ended.

A run that orders after the published one and succeeded is a newer run on its way to
publication: it stays. A superseded run that succeeded also leaves the run index GET
/batches reads (duffbeer.history); a failed run stays there, as its quarantine report does.
The state's Iceberg tables are not here: their files are removed by Iceberg's own
maintenance (glue_jobs/maintain_tables.py).

Errors are collected, not raised: the batch is published whatever happens here, and the
CleanupErrors metric (alarmed) tells operators. The next run of the batch retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ConfigDict, Field

from duffbeer import history, naming, objects, utc
from duffbeer import manifest as manifests
from duffbeer.errors import DuffBeerError
from duffbeer.steps import Payload
from duffbeer.telemetry import Measure

logger = Logger(child=True)


class CleanUpResult(Payload):
    # Filled in as objects are deleted.
    model_config = ConfigDict(frozen=False)

    deleted_runs: list[str] = Field(default_factory=list)
    deleted_objects: int = 0
    errors: list[str] = Field(default_factory=list)

    def measures(self) -> list[Measure]:
        return [
            Measure("SupersededRunsDeleted", len(self.deleted_runs)),
            # Alarmed: leftovers are invisible to readers, and the next run retries them.
            Measure("CleanupErrors", len(self.errors)),
        ]


@dataclass(frozen=True)
class Grace:
    reader: timedelta
    orphan: timedelta


def _run_manifest(
    client: Any, bucket: str, batch_id: str, run_id: str
) -> manifests.Manifest | None:
    stored = objects.read(client, bucket, naming.run_manifest_key(batch_id, run_id))
    if stored is None:
        return None
    try:
        return manifests.loads(stored.body)
    except (ValueError, DuffBeerError):
        return None


def _pointer(client: Any, bucket: str, batch_id: str) -> manifests.Manifest | None:
    stored = objects.read(client, bucket, naming.manifest_key(batch_id))
    pointer = manifests.loads(stored.body) if stored is not None else None
    return pointer if pointer is not None and manifests.published_block(pointer) else None


def removable(
    run: manifests.Manifest | None,
    pointer: manifests.Manifest,
    *,
    last_written: datetime,
    now: datetime,
    grace: Grace,
) -> bool:
    """Whether a run other than the published one may go (the rule in the module doc)."""
    if run is None or run["status"] == naming.STATUS_FAILED:
        return last_written <= now - grace.orphan
    published = manifests.published_block(pointer)
    assert published is not None
    settled = utc.parse(published["published_at"]) <= now - grace.reader
    return settled and manifests.order_of(run) < manifests.order_of(pointer)


def _index_entry(run: manifests.Manifest | None) -> list[str]:
    """The run's key in the run index, if it succeeded (PublishBatch recorded it)."""
    if run is None or run["status"] != naming.STATUS_SUCCEEDED:
        return []
    source = run["source"]
    at = history.run_time(source["event_time"], source.get("rerun_at"))
    return [history.entry_key(run["batch_id"], run["run_id"], at)]


def clean_runs(
    *, batch_id: str, bucket: str, client: Any, now: datetime, grace: Grace, result: CleanUpResult
) -> None:
    pointer = _pointer(client, bucket, batch_id)
    if pointer is None:
        return  # nothing published: every run of the batch is still evidence
    batch_prefix = f"{naming.RUNS_PREFIX}{batch_id}/"
    doomed: dict[str, list[str]] = {}
    for child in objects.child_prefixes(client, bucket, batch_prefix):
        run_id = child.rstrip("/")
        if run_id == pointer["run_id"]:
            continue
        entries = list(objects.listing(client, bucket, f"{batch_prefix}{child}"))
        if not entries:
            continue
        run = _run_manifest(client, bucket, batch_id, run_id)
        last_written = max(entry["LastModified"] for entry in entries)
        if removable(run, pointer, last_written=last_written, now=now, grace=grace):
            doomed[run_id] = [entry["Key"] for entry in entries] + _index_entry(run)
    if not doomed:
        return
    # The pointer read again just before deleting: whatever moved it meanwhile moved it to
    # a run ordering later still, never to one of these (RunOrder is total).
    latest = _pointer(client, bucket, batch_id)
    for run_id, keys in sorted(doomed.items()):
        if latest is None or run_id == latest["run_id"]:
            continue
        errors = objects.delete_keys(client, bucket, keys)
        result.deleted_runs.append(run_id)
        result.deleted_objects += len(keys) - len(errors)
        result.errors += errors


def clean_up(*, batch_id: str, bucket: str, s3: Any, now: datetime, grace: Grace) -> CleanUpResult:
    """Delete the batch's runs that can never be published or read again."""
    result = CleanUpResult()
    try:
        clean_runs(batch_id=batch_id, bucket=bucket, client=s3, now=now, grace=grace, result=result)
    except (ClientError, BotoCoreError, DuffBeerError) as e:
        result.errors.append(f"cleaning the runs of {batch_id}: {type(e).__name__}: {e}")
    return result
