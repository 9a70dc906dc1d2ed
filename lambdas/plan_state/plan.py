"""Compare the batch pointers with the state's live batches; write the merge plan if they differ.

The state pointer names the current version; its version manifest lists the batches it
reflects with the ETag each batch pointer had. Listing `manifests/` gives every pointer's
ETag, so only pointers that changed since are read. `duffbeer.state.plan_merge` decides the
merge; the plan is written to `state/plans/<version>.json` for the MergeState job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from duffbeer import manifest as manifests
from duffbeer import naming, objects, state
from duffbeer.errors import BatchNotPublishedError, StateNotPublishedError
from duffbeer.steps import Payload
from duffbeer.telemetry import Measure

logger = Logger(child=True)


class PlanResult(Payload):
    changed: bool
    # The version the plan builds, or (nothing to merge) the current one; None: no state yet.
    version: str | None
    plan_key: str | None
    changes: int = 0
    withdrawn: int = 0

    def measures(self) -> list[Measure]:
        return [Measure("StateMergesPlanned", int(self.changed))]


def read_pointer(
    client: Any, bucket: str
) -> tuple[state.StatePointer | None, str | None]:
    """The state pointer and its ETag, or (None, None) before the first publication."""
    stored = objects.read(client, bucket, naming.STATE_POINTER_KEY)
    if stored is None:
        return None, None
    return state.loads_pointer(stored.body), stored.etag


def read_state_manifest(client: Any, bucket: str, key: str) -> state.StateManifest:
    stored = objects.read(client, bucket, key)
    if stored is None:
        raise StateNotPublishedError(f"s3://{bucket}/{key} does not exist")
    return state.loads_manifest(stored.body)


def _batch_id(key: str) -> str | None:
    name = key[len(naming.MANIFESTS_PREFIX) :]
    if "/" in name or not name.endswith(".json"):
        return None
    return name[: -len(".json")]


def published_batches(
    client: Any, bucket: str, known: dict[str, state.LiveBatch]
) -> dict[str, state.LiveBatch]:
    """Every batch pointer's published run; pointers whose ETag the state already knows are
    taken from `known` without reading them."""
    result: dict[str, state.LiveBatch] = {}
    for entry in objects.listing(client, bucket, naming.MANIFESTS_PREFIX):
        batch_id = _batch_id(entry["Key"])
        if batch_id is None:
            continue
        etag = str(entry["ETag"])
        live = known.get(batch_id)
        if live is not None and live.get("manifest_etag") == etag:
            result[batch_id] = live
            continue
        stored = objects.read(client, bucket, entry["Key"])
        if stored is None:  # deleted since the listing: not published any more
            continue
        try:
            published = manifests.published_block(manifests.loads(stored.body))
        except (ValueError, BatchNotPublishedError) as e:
            raise StateNotPublishedError(f"s3://{bucket}/{entry['Key']}: {e}") from e
        if published is None:
            continue
        result[batch_id] = state.LiveBatch(
            run_id=published["run_id"],
            source_event_time=published["source_event_time"],
            lines_prefix=published["outputs"]["order_lines"],
            manifest_etag=stored.etag,
        )
    return result


def plan_state(
    *,
    bucket: str,
    client: Any,
    run_id: str,
    now: datetime,
    settings: state.StateSettings,
    token: str,
) -> PlanResult:
    """Write the plan of the next version, or report that the state is up to date."""
    pointer, etag = read_pointer(client, bucket)
    base = (
        read_state_manifest(client, bucket, pointer["state_manifest"])
        if pointer is not None
        else None
    )
    published = published_batches(client, bucket, base["batches"] if base else {})
    plan = state.plan_merge(
        base=base,
        base_pointer_etag=etag,
        published=published,
        run_id=run_id,
        token=token,
        now=now,
        settings=settings,
    )
    if plan is None:
        return PlanResult(
            changed=False, version=pointer["version"] if pointer else None, plan_key=None
        )
    key = naming.state_plan_key(plan["version"])
    objects.put(client, bucket, key, state.dumps(plan))
    logger.info(
        "merge planned",
        extra={
            "version": plan["version"],
            "base_version": plan["base"]["version"] if plan["base"] else None,
            "changes": [c["batch_id"] for c in plan["changes"]],
            "withdrawn": plan["withdrawn"],
        },
    )
    return PlanResult(
        changed=True,
        version=plan["version"],
        plan_key=key,
        changes=len(plan["changes"]),
        withdrawn=len(plan["withdrawn"]),
    )
