"""Delete what no reader can name any more: superseded runs of a batch and old state versions.

Runs after the Catalog step, so the catalog already names the batch's published run and the
stable views name the published state version. What stays:

- the batch's published run; a run without a run manifest (its job may still be running)
  until the orphan grace period has passed; every other run until the batch's current
  publication is older than the reader grace period (a merge planned on a superseded run,
  or a catalog step racing this one, may still read it meanwhile);
- the state version the pointer names, the one the stable views name, every version that
  stopped being current less than the reader grace period ago (the pointer's history), and
  any version written to less than the reader grace period ago (a merge in flight);
- in a version that goes, the partitions a kept version still reuses.

Errors are collected, not raised: the batch is published whatever happens here, and the
CleanupErrors metric (alarmed) tells operators. The next run of any batch retries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ConfigDict, Field

from duffbeer import catalog_tables, glue_catalog, naming, objects, state, utc
from duffbeer import manifest as manifests
from duffbeer.errors import DuffBeerError
from duffbeer.steps import Payload
from duffbeer.telemetry import Measure

logger = Logger(child=True)

_VERSIONED_TABLE = re.compile(r"^(?P<table>.+)_v(?P<seq>\d{10})_(?P<token>[0-9a-f]{8})$")


class CleanUpResult(Payload):
    # Filled in as objects are deleted.
    model_config = ConfigDict(frozen=False)

    deleted_runs: list[str] = Field(default_factory=list)
    deleted_versions: list[str] = Field(default_factory=list)
    dropped_tables: int = 0
    deleted_objects: int = 0
    errors: list[str] = Field(default_factory=list)

    def measures(self) -> list[Measure]:
        return [
            Measure("SupersededRunsDeleted", len(self.deleted_runs)),
            Measure("StateVersionsDeleted", len(self.deleted_versions)),
            # Alarmed: leftovers are invisible to readers, and the next run retries them.
            Measure("CleanupErrors", len(self.errors)),
        ]


@dataclass(frozen=True)
class Grace:
    reader: timedelta
    orphan: timedelta


def _newest(entries: list[dict[str, Any]]) -> datetime | None:
    return max((entry["LastModified"] for entry in entries), default=None)


# --- Runs of the batch ---------------------------------------------------------------------


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


def clean_runs(
    *, batch_id: str, bucket: str, client: Any, now: datetime, grace: Grace, result: CleanUpResult
) -> None:
    stored = objects.read(client, bucket, naming.manifest_key(batch_id))
    published = manifests.published_block(manifests.loads(stored.body)) if stored else None
    if published is None:
        return  # nothing published: every run of the batch is still evidence
    settled = utc.parse(published["published_at"]) <= now - grace.reader
    batch_prefix = f"{naming.RUNS_PREFIX}{batch_id}/"
    for child in objects.child_prefixes(client, bucket, batch_prefix):
        run_id = child.rstrip("/")
        if run_id == published["run_id"]:
            continue
        entries = list(objects.listing(client, bucket, f"{batch_prefix}{child}"))
        if not entries:
            continue
        if _run_manifest(client, bucket, batch_id, run_id) is None:
            newest = _newest(entries)
            removable = newest is not None and newest <= now - grace.orphan
        else:
            removable = settled
        if not removable:
            continue
        errors = objects.delete_keys(client, bucket, [entry["Key"] for entry in entries])
        result.deleted_runs.append(run_id)
        result.deleted_objects += len(entries) - len(errors)
        result.errors += errors


# --- State versions ------------------------------------------------------------------------


def _stable_view_version(glue: Any, database: str) -> str | None:
    view = glue_catalog.get_table(glue, database, state.CURRENT_LINES_TABLE)
    if view is None:
        return None
    version = view.get("Parameters", {}).get(catalog_tables.STATE_VERSION_PARAMETER)
    return str(version) if version else None


def _kept_versions(
    pointer: state.StatePointer | None, view_version: str | None, now: datetime, grace: Grace
) -> set[str]:
    kept: set[str] = set()
    if view_version:
        kept.add(view_version)
    if pointer is not None:
        kept.add(pointer["version"])
        horizon = now - grace.reader
        kept |= {
            entry["version"]
            for entry in pointer["history"]
            if utc.parse(entry["superseded_at"]) > horizon
        }
    return kept


def _referenced_locations(client: Any, bucket: str, versions: set[str]) -> set[str]:
    """Every location the manifests of `versions` name (their own and reused partitions)."""
    locations: set[str] = set()
    for version in versions:
        stored = objects.read(client, bucket, naming.state_manifest_key(version))
        if stored is None:
            continue
        manifest = state.loads_manifest(stored.body)
        for where in manifest["tables"].values():
            if "location" in where:
                locations.add(where["location"])
            locations |= {p["location"] for p in where.get("partitions", [])}
    return locations


def _versioned_tables(glue: Any, database: str) -> Iterator[tuple[str, str]]:
    """(table name, version) of every versioned table in the versions database."""
    for name in glue_catalog.table_names(glue, database):
        match = _VERSIONED_TABLE.match(name)
        if match is not None:
            yield name, f"{match.group('seq')}-{match.group('token')}"


def clean_versions(
    *,
    bucket: str,
    s3: Any,
    glue: Any,
    database: str,
    versions_database: str,
    now: datetime,
    grace: Grace,
    result: CleanUpResult,
) -> None:
    stored = objects.read(s3, bucket, naming.STATE_POINTER_KEY)
    pointer = state.loads_pointer(stored.body) if stored is not None else None
    kept = _kept_versions(pointer, _stable_view_version(glue, database), now, grace)
    present = {
        child.rstrip("/"): list(
            objects.listing(s3, bucket, naming.state_version_prefix(child.rstrip("/")))
        )
        for child in objects.child_prefixes(s3, bucket, naming.STATE_VERSIONS_PREFIX)
    }
    # A version written to recently may be a merge in flight.
    for version, entries in present.items():
        newest = _newest(entries)
        if newest is not None and newest > now - grace.reader:
            kept.add(version)
    referenced = _referenced_locations(s3, bucket, kept & set(present))
    for version, entries in sorted(present.items()):
        if version in kept:
            continue
        doomed = [
            entry["Key"]
            for entry in entries
            if entry["Key"].rsplit("/", 1)[0] + "/" not in referenced
        ]
        errors = objects.delete_keys(s3, bucket, doomed)
        result.deleted_objects += len(doomed) - len(errors)
        result.errors += errors
        if len(doomed) == len(entries):
            result.deleted_versions.append(version)
    for entry in objects.listing(s3, bucket, naming.STATE_PLANS_PREFIX):
        version = entry["Key"][len(naming.STATE_PLANS_PREFIX) :].removesuffix(".json")
        if version not in kept and entry["LastModified"] <= now - grace.reader:
            result.errors += objects.delete_keys(s3, bucket, [entry["Key"]])
    for name, version in _versioned_tables(glue, versions_database):
        if version not in kept and glue_catalog.delete_table(glue, versions_database, name):
            result.dropped_tables += 1


def clean_up(
    *,
    batch_id: str,
    bucket: str,
    s3: Any,
    glue: Any,
    database: str,
    versions_database: str,
    now: datetime,
    grace: Grace,
) -> CleanUpResult:
    """Delete the batch's superseded runs and the state versions nothing names any more."""
    result = CleanUpResult()
    try:
        clean_runs(batch_id=batch_id, bucket=bucket, client=s3, now=now, grace=grace, result=result)
    except (ClientError, BotoCoreError, DuffBeerError) as e:
        result.errors.append(f"cleaning the runs of {batch_id}: {type(e).__name__}: {e}")
    try:
        clean_versions(
            bucket=bucket,
            s3=s3,
            glue=glue,
            database=database,
            versions_database=versions_database,
            now=now,
            grace=grace,
            result=result,
        )
    except (ClientError, BotoCoreError, DuffBeerError) as e:
        result.errors.append(f"cleaning the state versions: {type(e).__name__}: {e}")
    return result
