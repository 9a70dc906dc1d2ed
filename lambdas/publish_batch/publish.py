"""Verify that the Glue job published this run of a batch, then delete superseded runs.

The Glue job publishes a run by writing `manifests/<batch_id>.json` last (naming.py). This
step checks that the pointer names this run with status SUCCEEDED and that every partition
and report prefix it lists holds objects, so the Catalog step never registers a hole. Then
it deletes the outputs of older runs of the same batch: runs that finished (their own
`_manifest.json` exists) and either failed or were published before this one. A newer run
still in flight, or a newer run about to publish, is never touched; nor is another batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from duffbeer import manifest as manifests
from duffbeer import naming
from duffbeer.errors import BatchNotPublishedError

logger = Logger(child=True)

PUBLISHED = "published"
# A newer upload of the same key published after this run finished: nothing to do, the
# batch shows the newer data (current-state rules order batches by source event time).
SUPERSEDED = "superseded"

_DELETE_BATCH = 1000


@dataclass
class PublishResult:
    batch_id: str
    run_id: str
    outcome: str
    published_run_id: str
    rows_read: int
    rows_valid: int
    rows_rejected: int
    partitions: int
    # From the upload's S3 event to this check: the freshness users experience.
    latency_seconds: float
    # The Glue job's own start-to-finish time, when its manifest records it.
    transform_seconds: float | None
    deleted_runs: list[str] = field(default_factory=list)
    deleted_objects: int = 0
    cleanup_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_json(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    data: bytes = body.read()
    return data


def _load(client: Any, bucket: str, key: str) -> manifests.Manifest | None:
    data = _read_json(client, bucket, key)
    if data is None:
        return None
    try:
        return manifests.loads(data)
    except ValueError as e:
        raise BatchNotPublishedError(f"s3://{bucket}/{key} is not a manifest: {e}") from e


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    # Manifests carry UTC times; a naive one must still compare with aware ones.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(run: manifests.Manifest) -> float | None:
    started, finished = run.get("started_at"), run.get("finished_at")
    if not started or not finished:
        return None
    return (_time(finished) - _time(started)).total_seconds()


def _objects(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def _has_objects(client: Any, bucket: str, prefix: str) -> bool:
    response = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(response.get("KeyCount", 0))


def _run_ids(client: Any, bucket: str, batch_id: str) -> list[str]:
    batch_prefix = f"{naming.RUNS_PREFIX}{batch_id}/"
    runs = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=batch_prefix, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            runs.append(common["Prefix"][len(batch_prefix) :].rstrip("/"))
    return runs


def _check_this_run(
    pointer: manifests.Manifest, run: manifests.Manifest | None, *, run_id: str, where: str
) -> tuple[str, manifests.Manifest, manifests.Published]:
    """(PUBLISHED or SUPERSEDED, this run's manifest, the published block), else raise with
    what the manifests say instead."""
    published = pointer.get("published")
    if pointer["run_id"] == run_id:
        if pointer["status"] != naming.STATUS_SUCCEEDED:
            error = pointer.get("error")
            why = f"{error['type']}: {error['message']}" if error else "no error recorded"
            raise BatchNotPublishedError(f"{where}: run {run_id} ended {pointer['status']} ({why})")
        if published is None or published["run_id"] != run_id:
            raise BatchNotPublishedError(f"{where}: run {run_id} succeeded but is not published")
        return PUBLISHED, pointer, published
    if run is None:
        raise BatchNotPublishedError(
            f"{where} names run {pointer['run_id']}, and run {run_id} wrote no run manifest"
        )
    if (
        run["status"] == naming.STATUS_SUCCEEDED
        and published is not None
        and _time(published["source_event_time"]) > _time(run["source"]["event_time"])
    ):
        return SUPERSEDED, run, published
    raise BatchNotPublishedError(
        f"{where} publishes run {published['run_id'] if published else None}, not run {run_id} "
        f"(status {run['status']})"
    )


def _missing_outputs(client: Any, bucket: str, published: manifests.Published) -> list[str]:
    prefixes = [p["location"] for p in published["partitions"]]
    prefixes += list(published["outputs"]["reports"].values())
    return [prefix for prefix in prefixes if not _has_objects(client, bucket, prefix)]


def _is_removable(
    run: manifests.Manifest | None,
    objects: list[dict[str, Any]],
    *,
    published_event_time: datetime,
    stale_before: datetime,
) -> bool:
    if run is None:
        return all(obj["LastModified"] < stale_before for obj in objects)
    if run["status"] != naming.STATUS_SUCCEEDED:
        return True
    return _time(run["source"]["event_time"]) <= published_event_time


def _delete(client: Any, bucket: str, keys: list[str]) -> list[str]:
    errors: list[str] = []
    for start in range(0, len(keys), _DELETE_BATCH):
        chunk = keys[start : start + _DELETE_BATCH]
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
        )
        errors += [f"{e['Key']}: {e.get('Code')}" for e in response.get("Errors", [])]
    return errors


def verify_and_clean(
    *,
    batch_id: str,
    run_id: str,
    bucket: str,
    client: Any,
    now: datetime,
    stale_after: timedelta,
) -> PublishResult:
    """Check the publication of `run_id`, then delete the batch's superseded runs."""
    pointer_key = naming.manifest_key(batch_id)
    where = f"s3://{bucket}/{pointer_key}"
    pointer = _load(client, bucket, pointer_key)
    if pointer is None:
        raise BatchNotPublishedError(f"{where} does not exist: run {run_id} published nothing")
    if pointer["batch_id"] != batch_id:
        raise BatchNotPublishedError(f"{where} describes batch {pointer['batch_id']}")
    run_manifest = (
        pointer
        if pointer["run_id"] == run_id
        else _load(client, bucket, naming.run_manifest_key(batch_id, run_id))
    )
    outcome, run, published = _check_this_run(pointer, run_manifest, run_id=run_id, where=where)
    missing = _missing_outputs(client, bucket, published)
    if missing:
        raise BatchNotPublishedError(
            f"{where} lists outputs that hold no objects: {', '.join(missing)}"
        )
    result = PublishResult(
        batch_id=batch_id,
        run_id=run_id,
        outcome=outcome,
        published_run_id=published["run_id"],
        rows_read=run["rows_read"],
        rows_valid=run["rows_valid"],
        rows_rejected=run["rows_rejected"],
        partitions=len(run["partitions"]),
        latency_seconds=(now - _time(run["source"]["event_time"])).total_seconds(),
        transform_seconds=_duration(run),
    )

    published_event_time = _time(published["source_event_time"])
    for other in _run_ids(client, bucket, batch_id):
        if other == published["run_id"]:
            continue
        objects = list(_objects(client, bucket, naming.run_prefix(batch_id, other)))
        other_run = _load(client, bucket, naming.run_manifest_key(batch_id, other))
        if not objects or not _is_removable(
            other_run,
            objects,
            published_event_time=published_event_time,
            stale_before=now - stale_after,
        ):
            continue
        errors = _delete(client, bucket, [obj["Key"] for obj in objects])
        result.deleted_runs.append(other)
        result.deleted_objects += len(objects) - len(errors)
        result.cleanup_errors += errors
    return result
