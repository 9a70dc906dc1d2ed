"""Publish a state version: verify it, register its tables, then move the state pointer.

The MergeState job wrote `state/versions/<version>/` and its version manifest last. This
step checks the manifest matches the plan and that every partition the version wrote holds
objects, registers the version's tables (and partitions) in the versions database, and only
then writes `state/current.json` with `If-Match` on the pointer the plan was based on. If
the pointer moved meanwhile, the version is built on a stale base: StateConflictError makes
the workflow plan again. A retry after the pointer moved to this version is a no-op.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from duffbeer import glue_catalog, naming, objects, state, utc
from duffbeer.errors import StateConflictError, StateNotPublishedError
from duffbeer.steps import Payload, StepEvent
from duffbeer.telemetry import Measure

logger = Logger(child=True)

PUBLISHED = "published"
ALREADY_PUBLISHED = "already_published"


class PublishStateEvent(StepEvent):
    """The plan to publish (PlanState's result)."""

    version: str
    plan_key: str


class PublishStateResult(Payload):
    version: str
    seq: int
    outcome: str
    lines: int
    orders: int
    clients: int
    tables_registered: int
    partitions_registered: int

    def measures(self) -> list[Measure]:
        return [
            Measure("StateVersionsPublished", int(self.outcome == PUBLISHED)),
            Measure("CurrentLines", self.lines),
        ]


def _read_pointer(client: Any, bucket: str) -> tuple[state.StatePointer | None, str | None]:
    stored = objects.read(client, bucket, naming.STATE_POINTER_KEY)
    if stored is None:
        return None, None
    return state.loads_pointer(stored.body), stored.etag


def _stale(plan: state.MergePlan, pointer: state.StatePointer | None) -> bool:
    """Whether the pointer no longer names the version the plan was based on."""
    base = plan["base"]
    if base is None:
        return pointer is not None
    return pointer is None or pointer["version"] != base["version"]


def _own_locations(manifest: state.StateManifest) -> list[str]:
    """The prefixes this version wrote (reused partitions were checked when first published)."""
    own = naming.state_version_prefix(manifest["version"])
    locations: list[str] = []
    for where in manifest["tables"].values():
        if "location" in where and where["rows"]:
            locations.append(where["location"])
        locations += [p["location"] for p in where.get("partitions", []) if p["rows"]]
    return [location for location in locations if location.startswith(own)]


def _verify(client: Any, bucket: str, plan: state.MergePlan, manifest: state.StateManifest) -> None:
    where = f"s3://{bucket}/{naming.state_manifest_key(plan['version'])}"
    if (manifest["version"], manifest["seq"]) != (plan["version"], plan["seq"]):
        raise StateNotPublishedError(f"{where} describes version {manifest['version']}")
    missing_tables = sorted(set(state.STATE_TABLES) - set(manifest["tables"]))
    if missing_tables:
        raise StateNotPublishedError(f"{where} lists no {', '.join(missing_tables)}")
    written = {
        entry["Key"].rsplit("/", 1)[0] + "/"
        for entry in objects.listing(client, bucket, naming.state_version_prefix(plan["version"]))
    }
    missing = [location for location in _own_locations(manifest) if location not in written]
    if missing:
        raise StateNotPublishedError(
            f"{where} lists locations that hold no objects: {', '.join(missing[:10])}"
        )


def publish_state(
    *,
    version: str,
    plan_key: str,
    bucket: str,
    s3: Any,
    glue: Any,
    versions_database: str,
    now: datetime,
    reader_grace: timedelta,
) -> PublishStateResult:
    """Publish `version` (built from the plan at `plan_key`) as the current state."""
    stored_plan = objects.read(s3, bucket, plan_key)
    if stored_plan is None:
        raise StateNotPublishedError(f"s3://{bucket}/{plan_key} does not exist")
    plan = state.loads_plan(stored_plan.body)
    if plan["version"] != version:
        raise StateNotPublishedError(f"s3://{bucket}/{plan_key} plans version {plan['version']}")
    pointer, _ = _read_pointer(s3, bucket)
    stored_manifest = objects.read(s3, bucket, naming.state_manifest_key(version))
    if stored_manifest is None:
        if pointer is not None and pointer["version"] != version and _stale(plan, pointer):
            raise StateConflictError(
                f"state version {version} was not built: the pointer moved to "
                f"{pointer['version']} before the merge ran"
            )
        raise StateNotPublishedError(
            f"the merge wrote no version manifest for {version} "
            f"(s3://{bucket}/{naming.state_manifest_key(version)})"
        )
    manifest = state.loads_manifest(stored_manifest.body)
    outcome = PUBLISHED
    if pointer is not None and pointer["version"] == version:
        outcome = ALREADY_PUBLISHED
    elif _stale(plan, pointer):
        raise StateConflictError(
            f"state version {version} is based on "
            f"{plan['base']['version'] if plan['base'] else 'no version'}, but the pointer "
            f"names {pointer['version'] if pointer else 'none'}: plan again"
        )
    _verify(s3, bucket, plan, manifest)
    tables, partitions = glue_catalog.register_state_version(
        glue, versions_database, bucket, manifest
    )
    if outcome == PUBLISHED:
        document = state.StatePointer(
            pointer_format=state.STATE_FORMAT,
            version=version,
            seq=manifest["seq"],
            published_at=utc.iso(now),
            state_manifest=naming.state_manifest_key(version),
            settings=manifest["settings"],
            history=state.next_history(pointer, now, reader_grace),
        )
        # If-Match the pointer the plan read: any write since then makes this version stale.
        base_etag = plan["base"]["pointer_etag"] if plan["base"] else None
        written = objects.put_if(
            s3, bucket, naming.STATE_POINTER_KEY, state.dumps(document), etag=base_etag
        )
        if not written:
            now_pointer, _ = _read_pointer(s3, bucket)
            if now_pointer is None or now_pointer["version"] != version:
                raise StateConflictError(
                    f"the state pointer moved while version {version} was being published"
                )
            outcome = ALREADY_PUBLISHED
    counts = manifest.get("counts", {})
    return PublishStateResult(
        version=version,
        seq=manifest["seq"],
        outcome=outcome,
        lines=int(counts.get("lines", 0)),
        orders=int(counts.get("orders", 0)),
        clients=int(counts.get("clients", 0)),
        tables_registered=tables,
        partitions_registered=partitions,
    )
