"""The Store step: publish a run of a batch by a conditional write of the batch pointer.

The Glue job writes the run's outputs and then its run manifest
(`runs/<batch_id>/<run_id>/_manifest.json`). This step checks that the run succeeded and
that every partition and report it lists holds objects (one listing of the run's prefix),
then writes the batch pointer `manifests/<batch_id>.json` with `If-Match` on the ETag it read
(`If-None-Match: *` for a first publication), and checks the outputs once more. Only a run
that orders after the published one is published (duffbeer.manifest.RunOrder: upload time,
S3 sequencer, hand re-run time, run id; ADR 0009), and a racing writer makes the step read
the pointer again and decide again, so two runs of one batch can never leave the older one
published. Whatever it decides, the run is then recorded in the run index GET /batches
reads (duffbeer.history; a retry writes the same entry again). Nothing is deleted here:
superseded runs go in the CleanUp step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from duffbeer import history, naming, objects, utc
from duffbeer import manifest as manifests
from duffbeer.errors import BatchNotPublishedError
from duffbeer.steps import Payload
from duffbeer.telemetry import Measure

logger = Logger(child=True)

# Conditional writes that lose a race re-read the pointer; a pointer that changes this many
# times in a row means something else is wrong.
MAX_ATTEMPTS = 5


class PublishResult(Payload):
    batch_id: str
    run_id: str
    outcome: str  # manifest.PUBLISH, ALREADY_PUBLISHED or SUPERSEDED
    published_run_id: str
    rows_read: int
    rows_valid: int
    rows_rejected: int
    partitions: int
    # From the upload's S3 event to this step: the freshness users experience.
    latency_seconds: float
    # The Glue job's own start-to-finish time.
    transform_seconds: float | None
    conflicts: int = 0

    def measures(self) -> list[Measure]:
        measures = [
            Measure("BatchesPublished", int(self.outcome == manifests.PUBLISH)),
            Measure("RowsRead", self.rows_read),
            Measure("RowsValid", self.rows_valid),
            Measure("RowsRejected", self.rows_rejected),
            Measure("BatchLatency", max(self.latency_seconds, 0.0), MetricUnit.Seconds),
            Measure("PublicationConflicts", self.conflicts),
        ]
        if self.transform_seconds is not None:
            seconds = self.transform_seconds
            measures.append(Measure("TransformDuration", seconds, MetricUnit.Seconds))
        return measures


def _load(stored: objects.StoredObject, where: str) -> manifests.Manifest:
    try:
        return manifests.loads(stored.body)
    except ValueError as e:
        raise BatchNotPublishedError(f"{where} is not a manifest: {e}") from e


def _run_manifest(client: Any, bucket: str, batch_id: str, run_id: str) -> manifests.Manifest:
    key = naming.run_manifest_key(batch_id, run_id)
    where = f"s3://{bucket}/{key}"
    stored = objects.read(client, bucket, key)
    if stored is None:
        raise BatchNotPublishedError(f"{where} does not exist: run {run_id} did not complete")
    run = _load(stored, where)
    if (run["batch_id"], run["run_id"]) != (batch_id, run_id):
        raise BatchNotPublishedError(f"{where} describes run {run['run_id']} of {run['batch_id']}")
    if run["status"] != naming.STATUS_SUCCEEDED:
        error = run.get("error")
        why = f"{error['type']}: {error['message']}" if error else "no error recorded"
        raise BatchNotPublishedError(f"{where}: run {run_id} ended {run['status']} ({why})")
    return run


def _missing_outputs(client: Any, bucket: str, run: manifests.Manifest) -> list[str]:
    """The output prefixes the run lists that hold no object, from one paginated listing of
    the run's prefix (however many partitions it wrote)."""
    outputs = run["outputs"]
    if outputs is None:
        return ["outputs"]
    prefixes = [p["location"] for p in run["partitions"]]
    prefixes += list(outputs["reports"].values())
    present: set[str] = set()
    for entry in objects.listing(client, bucket, naming.run_prefix(run["batch_id"], run["run_id"])):
        parts = entry["Key"].split("/")[:-1]
        present.update("/".join(parts[:depth]) + "/" for depth in range(1, len(parts) + 1))
    return [prefix for prefix in prefixes if prefix not in present]


def _check_outputs(client: Any, bucket: str, run: manifests.Manifest, when: str) -> None:
    missing = _missing_outputs(client, bucket, run)
    if missing:
        raise BatchNotPublishedError(
            f"run {run['run_id']} of batch {run['batch_id']} lists outputs that hold no "
            f"objects {when}: {', '.join(missing)}"
        )


def _duration(run: manifests.Manifest) -> float | None:
    started, finished = run.get("started_at"), run.get("finished_at")
    if not started or not finished:
        return None
    return (utc.parse(finished) - utc.parse(started)).total_seconds()


def publish_run(
    *, batch_id: str, run_id: str, bucket: str, client: Any, now: datetime
) -> PublishResult:
    """Publish `run_id` as the batch's current run unless a newer upload is published."""
    run = _run_manifest(client, bucket, batch_id, run_id)
    _check_outputs(client, bucket, run, "before its publication")
    pointer_key = naming.manifest_key(batch_id)
    where = f"s3://{bucket}/{pointer_key}"
    conflicts = 0
    for _ in range(MAX_ATTEMPTS):
        stored = objects.read(client, bucket, pointer_key)
        pointer = _load(stored, where) if stored is not None else None
        if pointer is not None and pointer["batch_id"] != batch_id:
            raise BatchNotPublishedError(f"{where} describes batch {pointer['batch_id']}")
        outcome = manifests.publication_decision(pointer, run)
        if outcome != manifests.PUBLISH:
            published = manifests.published_block(pointer) if pointer else None
            published_run = published["run_id"] if published else run_id
            break
        document = manifests.publish(run, published_at=utc.iso(now))
        if objects.put_if(
            client,
            bucket,
            pointer_key,
            manifests.dumps(document),
            etag=stored.etag if stored is not None else None,
        ):
            published_run = run_id
            # Nothing deletes a run that orders after the published one; checked anyway,
            # so that a pointer never names a run without its files unnoticed.
            _check_outputs(client, bucket, run, "after its publication")
            break
        conflicts += 1
        logger.info("batch pointer changed while publishing; deciding again")
    else:
        raise BatchNotPublishedError(
            f"{where} changed {MAX_ATTEMPTS} times while run {run_id} was being published"
        )
    source = run["source"]
    history.record(
        client,
        bucket,
        batch_id=batch_id,
        run_id=run_id,
        at=history.run_time(source["event_time"], source.get("rerun_at")),
        outcome=outcome,
    )
    return PublishResult(
        batch_id=batch_id,
        run_id=run_id,
        outcome=outcome,
        published_run_id=published_run,
        rows_read=run["rows_read"],
        rows_valid=run["rows_valid"],
        rows_rejected=run["rows_rejected"],
        partitions=len(run["partitions"]),
        latency_seconds=(now - utc.parse(run["source"]["event_time"])).total_seconds(),
        transform_seconds=_duration(run),
        conflicts=conflicts,
    )
